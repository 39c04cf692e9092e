/*
 * A token filter applying ArabicFold to every token. A token that folds to nothing
 * stays, empty: a normalizer must produce exactly one token, even for "".
 */
package org.rasd.fold;

import java.io.IOException;

import org.apache.lucene.analysis.TokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;

public final class RasdArabicFoldFilter extends TokenFilter {

    private final CharTermAttribute term = addAttribute(CharTermAttribute.class);

    public RasdArabicFoldFilter(TokenStream input) {
        super(input);
    }

    @Override
    public boolean incrementToken() throws IOException {
        if (!input.incrementToken()) {
            return false;
        }
        String folded = ArabicFold.apply(term);
        if (!folded.contentEquals(term)) {
            term.setEmpty().append(folded);
        }
        return true;
    }
}
