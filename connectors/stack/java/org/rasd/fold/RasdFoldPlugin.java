/*
 * The rasd_arabic_fold token filter: rasd's Arabic canonical form (see ArabicFold),
 * and the rasd_arabic_clitics token filter: each token's proclitic-free base at the
 * same position (see ArabicClitics), configured with min_base_length,
 * protected_words, article_words and equivalents (the index template passes
 * rasd's own lists).
 * Unlike the rasd-analysis plugin, this one provides no name that analysis-common
 * also provides, so the production Elasticsearch image installs it as well.
 */
package org.rasd.fold;

import java.util.List;
import java.util.Set;
import java.util.Map;

import org.apache.lucene.analysis.TokenStream;
import org.elasticsearch.index.analysis.PreConfiguredTokenFilter;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

public final class RasdFoldPlugin extends Plugin implements AnalysisPlugin {

    public static final String NAME = "rasd_arabic_fold";
    public static final String CLITICS = "rasd_arabic_clitics";

    public RasdFoldPlugin() {}

    @Override
    public List<PreConfiguredTokenFilter> getPreConfiguredTokenFilters() {
        // true: also applied to prefix and wildcard queries, like a normalizer.
        return List.of(PreConfiguredTokenFilter.singleton(NAME, true, RasdArabicFoldFilter::new));
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of(NAME, (indexSettings, env, name, settings) -> foldFactory(name), CLITICS, (indexSettings, env, name, settings) -> {
            ArabicClitics clitics = new ArabicClitics(
                settings.getAsInt("min_base_length", 3),
                Set.copyOf(settings.getAsList("protected_words")),
                Set.copyOf(settings.getAsList("article_words")),
                equivalents(settings.getAsList("equivalents"))
            );
            return new TokenFilterFactory() {
                @Override
                public String name() {
                    return name;
                }

                @Override
                public TokenStream create(TokenStream input) {
                    return new RasdArabicCliticsFilter(input, clitics);
                }
            };
        });
    }

    /** {@code "سوريه => سوريا"} lines, as in a mapping char filter. */
    private static Map<String, String> equivalents(List<String> lines) {
        Map<String, String> out = new java.util.HashMap<>();
        for (String line : lines) {
            String[] parts = line.split("=>", 2);
            if (parts.length != 2) {
                throw new IllegalArgumentException("rasd_arabic_clitics equivalents: expected 'a => b', got " + line);
            }
            out.put(parts[0].trim(), parts[1].trim());
        }
        return out;
    }

    private static TokenFilterFactory foldFactory(String name) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream input) {
                return new RasdArabicFoldFilter(input);
            }

            @Override
            public TokenStream normalize(TokenStream input) {
                return new RasdArabicFoldFilter(input);
            }
        };
    }
}
