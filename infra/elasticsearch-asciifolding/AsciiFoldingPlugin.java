package ologies.es.asciifolding;

import java.util.List;
import java.util.Map;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;
import org.elasticsearch.index.analysis.NormalizingTokenFilterFactory;
import org.elasticsearch.index.analysis.PreConfiguredTokenFilter;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

/**
 * The "asciifolding" token filter (Lucene's ASCIIFoldingFilter: Siân -> Sian,
 * Zoë -> Zoe), with the name and "preserve_original" option of the one in
 * Elasticsearch's analysis-common module, which the integ-test-zip distribution
 * served by Maven Central lacks. infra/elasticsearch.sh compiles this against
 * that distribution's own jars and installs it as a plugin.
 *
 * It is a classic plugin, not a stable-API one, because Elasticsearch wraps
 * stable-API filters in a way that custom normalizers (keyword fields) refuse.
 */
public class AsciiFoldingPlugin extends Plugin implements AnalysisPlugin {

    /** Configurable form: {"type": "asciifolding", "preserve_original": true}. */
    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of("asciifolding", (indexSettings, environment, name, settings) ->
            new Factory(name, settings.getAsBoolean("preserve_original", false)));
    }

    /** Plain "asciifolding" by name, also in _analyze without an index. */
    @Override
    public List<PreConfiguredTokenFilter> getPreConfiguredTokenFilters() {
        return List.of(PreConfiguredTokenFilter.singleton("asciifolding", true, ASCIIFoldingFilter::new));
    }

    static final class Factory extends AbstractTokenFilterFactory implements NormalizingTokenFilterFactory {
        private final boolean preserveOriginal;

        Factory(String name, boolean preserveOriginal) {
            super(name);
            this.preserveOriginal = preserveOriginal;
        }

        @Override
        public TokenStream create(TokenStream input) {
            return new ASCIIFoldingFilter(input, preserveOriginal);
        }

        /** A normalizer must yield exactly one token: never keep the original there. */
        @Override
        public TokenStream normalize(TokenStream input) {
            return new ASCIIFoldingFilter(input, false);
        }
    }
}
