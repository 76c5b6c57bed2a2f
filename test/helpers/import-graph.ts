/**
 * The import graph of src/ as dependency-cruiser reads it, with the layer rules of
 * .dependency-cruiser.cjs (`npm run layers`): one reading shared by the docs tests (the order's
 * path, the floors of docs/architecture.md) and the test of the rules themselves.
 */
import { join } from 'node:path';
import { cruise, type ICruiseResult, type IDependency } from 'dependency-cruiser';
import extractDepcruiseConfig from 'dependency-cruiser/config-utl/extract-depcruise-config';

export interface ImportGraph {
  /** Each module of the tree (a path from `baseDir`) with the modules of the tree it imports, types included. */
  imports: Map<string, string[]>;
  /** The rules broken, as `rule: from → to`. */
  violations: string[];
}

/** Cruises `paths` under `baseDir` with the project's rules (its configuration file read from `configDir`). */
export async function importGraph(
  baseDir: string,
  paths: readonly string[],
  configDir = baseDir,
): Promise<ImportGraph> {
  const config = await extractDepcruiseConfig(join(configDir, '.dependency-cruiser.cjs'));
  const { output } = await cruise([...paths], {
    ...config.options,
    baseDir,
    ruleSet: { forbidden: config.forbidden },
    validate: true,
    // A planted tree links the project's node_modules: its packages keep their node_modules/ paths.
    preserveSymlinks: true,
    tsConfig: { fileName: join(configDir, 'tsconfig.json') },
  });
  const result = output as ICruiseResult;
  const inTree = (dependency: IDependency) =>
    !dependency.coreModule && !dependency.resolved.startsWith('node_modules/');
  return {
    imports: new Map(
      result.modules.map((module) => [module.source, module.dependencies.filter(inTree).map((dep) => dep.resolved)]),
    ),
    violations: (result.summary.violations ?? []).map(
      (violation) => `${violation.rule.name}: ${violation.from} → ${violation.to}`,
    ),
  };
}
