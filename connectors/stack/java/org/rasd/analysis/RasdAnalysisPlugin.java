/*
 * The Lucene Arabic analysis components, under the names that Elasticsearch's
 * analysis-common module gives them, for the Elasticsearch distribution that
 * `rasd stack up` runs locally (the integ-test distribution from Maven Central,
 * which ships without analysis-common). pattern_capture is here too, with
 * analysis-common's settings (patterns, preserve_original), so that the stock
 * fallback of rasd_arabic_clitics can be measured locally. The uax_url_email
 * tokenizer and the unique filter are what the security index's "email"
 * analyzer needs besides pattern_capture, so that the native realm works on the
 * secured local stack (`rasd stack up --secure`).
 *
 * Because the names are the same, one index template works both here and on a
 * full Elasticsearch in production. Never install this plugin next to
 * analysis-common: Elasticsearch refuses to start on a duplicate name.
 */
package org.rasd.analysis;

import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.ar.ArabicAnalyzer;
import org.apache.lucene.analysis.ar.ArabicNormalizationFilter;
import org.apache.lucene.analysis.ar.ArabicStemFilter;
import org.apache.lucene.analysis.core.DecimalDigitFilter;
import org.apache.lucene.analysis.fa.PersianNormalizationFilter;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.elasticsearch.index.analysis.AbstractIndexAnalyzerProvider;
import org.elasticsearch.index.analysis.Analysis;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.index.analysis.PreBuiltAnalyzerProviderFactory;
import org.elasticsearch.index.analysis.PreConfiguredTokenFilter;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.indices.analysis.PreBuiltCacheFactory.CachingStrategy;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

public final class RasdAnalysisPlugin extends Plugin implements AnalysisPlugin {

    public RasdAnalysisPlugin() {}

    /** Filters by bare name: {@code "filter": ["arabic_normalization"]}. */
    @Override
    public List<PreConfiguredTokenFilter> getPreConfiguredTokenFilters() {
        // The boolean says whether the filter also applies to multi-term queries
        // (prefix, wildcard); it matches analysis-common's choice for each name.
        return List.of(
            PreConfiguredTokenFilter.singleton("arabic_normalization", true, ArabicNormalizationFilter::new),
            PreConfiguredTokenFilter.singleton("arabic_stem", false, ArabicStemFilter::new),
            PreConfiguredTokenFilter.singleton("decimal_digit", true, DecimalDigitFilter::new),
            PreConfiguredTokenFilter.singleton("persian_normalization", true, PersianNormalizationFilter::new)
        );
    }

    /** Filters by type: {@code {"type": "arabic_stem"}} inside index settings. */
    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of(
            "arabic_normalization", (indexSettings, env, name, settings) -> filter(name, ArabicNormalizationFilter::new),
            "arabic_stem", (indexSettings, env, name, settings) -> filter(name, ArabicStemFilter::new),
            "decimal_digit", (indexSettings, env, name, settings) -> filter(name, DecimalDigitFilter::new),
            "persian_normalization", (indexSettings, env, name, settings) -> filter(name, PersianNormalizationFilter::new),
            "pattern_capture", (indexSettings, env, name, settings) -> {
                Pattern[] patterns = settings.getAsList("patterns").stream().map(Pattern::compile).toArray(Pattern[]::new);
                boolean preserve = settings.getAsBoolean("preserve_original", true);
                return filter(name, input -> new PatternCaptureGroupTokenFilter(input, preserve, patterns));
            },
            "unique", (indexSettings, env, name, settings) -> {
                boolean samePosition = settings.getAsBoolean("only_on_same_position", false);
                return filter(name, input -> new UniqueTokenFilter(input, samePosition));
            }
        );
    }

    /** Tokenizers by type: {@code uax_url_email}, with analysis-common's {@code max_token_length}. */
    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("uax_url_email", (indexSettings, env, name, settings) -> {
            int maxTokenLength = settings.getAsInt("max_token_length", 255);
            return TokenizerFactory.newFactory(name, () -> {
                UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
                tokenizer.setMaxTokenLength(maxTokenLength);
                return tokenizer;
            });
        });
    }

    /** The {@code arabic} analyzer by bare name, e.g. in {@code _analyze} or a mapping. */
    @Override
    public List<PreBuiltAnalyzerProviderFactory> getPreBuiltAnalyzerProviderFactories() {
        return List.of(new PreBuiltAnalyzerProviderFactory("arabic", CachingStrategy.LUCENE, ArabicAnalyzer::new));
    }

    /** The {@code arabic} analyzer type, with analysis-common's {@code stopwords} and {@code stem_exclusion}. */
    @Override
    public Map<String, AnalysisProvider<AnalyzerProvider<? extends Analyzer>>> getAnalyzers() {
        return Map.of("arabic", (indexSettings, env, name, settings) -> {
            CharArraySet stopwords = Analysis.parseStopWords(env, settings, ArabicAnalyzer.getDefaultStopSet());
            CharArraySet exclusions = Analysis.parseStemExclusion(settings, CharArraySet.EMPTY_SET);
            ArabicAnalyzer analyzer = new ArabicAnalyzer(stopwords, exclusions);
            return new AbstractIndexAnalyzerProvider<ArabicAnalyzer>(name) {
                @Override
                public ArabicAnalyzer get() {
                    return analyzer;
                }
            };
        });
    }

    private static TokenFilterFactory filter(String name, java.util.function.Function<TokenStream, TokenStream> make) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream input) {
                return make.apply(input);
            }
        };
    }
}
