/*
 * rasd's proclitic analysis, for Elasticsearch: the same algorithm as
 * pipeline/arabic.py clitic_base(), so that Kibana's query bar, `rasd search`
 * and the alerts agree on which words are one word. One shared file of test
 * vectors (tests/fixtures/arabic_clitic_vectors.yaml) is checked against both.
 *
 * A token is canonical already (rasd_arabic_fold, arabic_normalization). Its
 * proclitic chain is at most a conjunction (و ف), then a preposition (ب ك ل),
 * then the article (ال), with ل + ال written لل. The longest chain that leaves
 * a base of at least minBaseLength characters is removed, unless the token ends
 * with a protected word (one whose first letters are part of its root: وزير,
 * بلد, كتاب, فلسطين...) that the removal would cut into; then the next shorter
 * chain is tried. A name whose article belongs to it (articleWords: الاسد) is
 * also protected, and after ل its article is only written لل (للاسد is
 * ل + الاسد, لالاسد is no spelling of it). Suffixes are never touched.
 */
package org.rasd.fold;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Set;

public final class ArabicClitics {

    private static final String[] CONJUNCTIONS = {"", "\u0648", "\u0641"};
    private static final String[] PREPOSITIONS = {"", "\u0628", "\u0643", "\u0644"};
    private static final String ARTICLE = "\u0627\u0644";
    private static final String LAM_LAM = "\u0644\u0644";

    /** Every non-empty proclitic chain, longest first. */
    private static final List<String> CHAINS = chains();

    private final int minBaseLength;
    private final Set<String> protectedWords;
    private final Set<String> articleWords;

    private final java.util.Map<String, String> equivalents;

    public ArabicClitics(
        int minBaseLength,
        Collection<String> protectedWords,
        Collection<String> articleWords,
        java.util.Map<String, String> equivalents
    ) {
        this.minBaseLength = minBaseLength;
        this.equivalents = java.util.Map.copyOf(equivalents);
        this.articleWords = Set.copyOf(articleWords);
        Set<String> all = new java.util.HashSet<>(protectedWords);
        all.addAll(articleWords);
        this.protectedWords = Set.copyOf(all);
    }

    private static List<String> chains() {
        List<String> out = new ArrayList<>();
        for (String conj : CONJUNCTIONS) {
            for (String prep : PREPOSITIONS) {
                for (String art : new String[] {"", ARTICLE}) {
                    String chain = conj + (prep.equals("\u0644") && !art.isEmpty() ? LAM_LAM : prep + art);
                    if (!chain.isEmpty() && !out.contains(chain)) {
                        out.add(chain);
                    }
                }
            }
        }
        out.sort(Comparator.comparingInt(String::length).reversed());
        return List.copyOf(out);
    }

    /** The token without its proclitics, or the token itself when nothing may be removed. */
    public String base(String token) {
        int length = token.codePointCount(0, token.length());
        // Chains are single UTF-16 units per letter, so chain.length() counts letters.
        for (String chain : CHAINS) {
            if (!token.startsWith(chain) || length - chain.length() < minBaseLength) {
                continue;
            }
            String rest = token.substring(chain.length());
            if (chain.endsWith(LAM_LAM) && articleWords.contains(ARTICLE + rest)) {
                return ARTICLE + rest;
            }
            if (chain.endsWith("\u0644") && articleWords.contains(rest)) {
                continue;
            }
            if (!cutsProtected(token, chain.length())) {
                return rest;
            }
        }
        return token;
    }

    /**
     * The spelling that the base also stands for (سوريه: سوريا), or null; only
     * when no article was removed (السوريه is the adjective).
     */
    public String equivalent(String token, String base) {
        String chain = token.substring(0, token.length() - base.length());
        if (chain.endsWith(ARTICLE) || chain.endsWith(LAM_LAM)) {
            return null;
        }
        return equivalents.get(base);
    }

    private boolean cutsProtected(String token, int chainLength) {
        // A protected word that ends the token and starts inside the chain.
        for (int start = 0; start < chainLength; start++) {
            if (protectedWords.contains(token.substring(start))) {
                return true;
            }
        }
        return false;
    }
}
