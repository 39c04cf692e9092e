/*
 * The rasd_arabic_fold token filter: rasd's Arabic canonical form (see ArabicFold).
 * Unlike the rasd-analysis plugin, this one provides no name that analysis-common
 * also provides, so the production Elasticsearch image installs it as well.
 */
package org.rasd.fold;

import java.util.List;
import java.util.Map;

import org.apache.lucene.analysis.TokenStream;
import org.elasticsearch.index.analysis.PreConfiguredTokenFilter;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

public final class RasdFoldPlugin extends Plugin implements AnalysisPlugin {

    public static final String NAME = "rasd_arabic_fold";

    public RasdFoldPlugin() {}

    @Override
    public List<PreConfiguredTokenFilter> getPreConfiguredTokenFilters() {
        // true: also applied to prefix and wildcard queries, like a normalizer.
        return List.of(PreConfiguredTokenFilter.singleton(NAME, true, RasdArabicFoldFilter::new));
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of(NAME, (indexSettings, env, name, settings) -> new TokenFilterFactory() {
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
        });
    }
}
