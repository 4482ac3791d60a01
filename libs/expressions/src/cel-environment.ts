// The single CEL environment every scope mapping is compiled against: declared variables and extra functions.
import { CelScalar, type CelEnv, celEnv, celFunc, mapType } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { parsePythonUrl } from './python-urlparse.ts';

const dynamicMap = mapType(CelScalar.STRING, CelScalar.DYN);

/** The variables a scope mapping may read; everything else is an undeclared reference. */
export const DECLARED_VARIABLES = {
  request: dynamicMap,
  claims: dynamicMap,
  provider: dynamicMap,
} as const;

/**
 * `urlparse(string) -> map(string, string)`: Python's urlparse fields (`scheme`, `netloc`, `path`,
 * `params`, `query`, `fragment`) plus its `hostname` and `port` properties ("" for None).
 */
const urlparseFunction = celFunc('urlparse', [CelScalar.STRING], mapType(CelScalar.STRING, CelScalar.STRING), (url) => {
  return new Map(Object.entries(parsePythonUrl(url)));
});

/**
 * Builds the environment: CEL's standard library, the cel-go `strings` extension (join, split,
 * lowerAscii, ...) because header values are mostly string work, and `urlparse`.
 */
export function createMappingEnvironment(): CelEnv<typeof DECLARED_VARIABLES> {
  return celEnv({ variables: DECLARED_VARIABLES, funcs: [...strings, urlparseFunction] });
}
