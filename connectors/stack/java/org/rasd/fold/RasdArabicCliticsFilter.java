/*
 * A token filter that emits, after each token, the token without its
 * proclitics (see ArabicClitics) at the same position, when they differ, and
 * the spelling that base also stands for (سوريه: سوريا), if any. At
 * index time a document's وقيصر is then found by قيصر; at query time a query
 * word such as المنشقين becomes the synonyms المنشقين | منشقين at one position.
 */
package org.rasd.fold;

import java.io.IOException;

import org.apache.lucene.analysis.TokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.analysis.tokenattributes.PositionIncrementAttribute;
import org.apache.lucene.util.AttributeSource;

public final class RasdArabicCliticsFilter extends TokenFilter {

    private final ArabicClitics clitics;
    private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
    private final PositionIncrementAttribute increment = addAttribute(PositionIncrementAttribute.class);
    private AttributeSource.State pending;
    private final java.util.ArrayDeque<String> queued = new java.util.ArrayDeque<>();

    public RasdArabicCliticsFilter(TokenStream input, ArabicClitics clitics) {
        super(input);
        this.clitics = clitics;
    }

    @Override
    public boolean incrementToken() throws IOException {
        if (!queued.isEmpty()) {
            restoreState(pending);
            term.setEmpty().append(queued.poll());
            increment.setPositionIncrement(0);
            return true;
        }
        if (!input.incrementToken()) {
            return false;
        }
        String token = term.toString();
        String base = clitics.base(token);
        if (!base.equals(token)) {
            queued.add(base);
        }
        String equivalent = clitics.equivalent(token, base);
        if (equivalent != null) {
            queued.add(equivalent);
        }
        if (!queued.isEmpty()) {
            pending = captureState();
        }
        return true;
    }

    @Override
    public void reset() throws IOException {
        super.reset();
        pending = null;
        queued.clear();
    }
}
