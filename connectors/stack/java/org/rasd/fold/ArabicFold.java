/*
 * rasd's one Arabic canonical form, for Elasticsearch: the same steps as
 * pipeline/arabic.py normalize(text, fold_teh_marbuta=True), so that a Kibana
 * search and an alert agree on what a word is. One shared file of test vectors
 * (tests/fixtures/arabic_fold_vectors.yaml) is checked against both.
 */
package org.rasd.fold;

import java.text.Normalizer;
import java.util.Locale;

public final class ArabicFold {

    private ArabicFold() {}

    /** Zero-width and bidi formatting characters, deleted inside words. */
    private static boolean ignorable(int cp) {
        return cp == 0x00AD || cp == 0x061C || (cp >= 0x200B && cp <= 0x200F)
            || (cp >= 0x202A && cp <= 0x202E) || cp == 0x2060
            || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
    }

    private static int fold(int cp) {
        switch (cp) {
            case 0x0623: case 0x0625: case 0x0622: case 0x0671: case 0x0672: case 0x0673:
                return 0x0627; // hamza and wasla forms of alef -> bare alef
            case 0x0649: case 0x06CC: case 0x06D2:
                return 0x064A; // alef maksura, Farsi yeh, yeh barree -> yeh
            case 0x06A9:
                return 0x0643; // keheh -> kaf
            case 0x06C0: case 0x06C1: case 0x06BE: case 0x0629: case 0x06C3:
                return 0x0647; // heh variants and teh marbuta -> heh
            default:
                if (cp >= 0x0660 && cp <= 0x0669) return '0' + (cp - 0x0660);
                if (cp >= 0x06F0 && cp <= 0x06F9) return '0' + (cp - 0x06F0);
                return cp;
        }
    }

    /** The canonical form of one token (empty for, e.g., a lone haraka). */
    public static String apply(CharSequence term) {
        String text = term.toString();
        if (!Normalizer.isNormalized(text, Normalizer.Form.NFKC)) {
            text = Normalizer.normalize(text, Normalizer.Form.NFKC);
        }
        StringBuilder out = new StringBuilder(text.length());
        text.codePoints().forEach(cp -> {
            if (cp == 0x0640 || ignorable(cp) || Character.getType(cp) == Character.NON_SPACING_MARK) {
                return; // tatweel, formatting characters, harakat and other marks
            }
            out.appendCodePoint(fold(cp));
        });
        return out.toString().toLowerCase(Locale.ROOT);
    }
}
