// Parse and semantically analyse KQL files against the findings table schema with Microsoft's Kusto
// language service (the same engine as the portal editor), offline.
//   node infra/kql/check_kql.js shared/schema/findings_table.json queries/*.kql
// Unknown columns, type errors and syntax errors are reported as errors; exit 1 if any.
'use strict';
const fs = require('fs');
require('@kusto/language-service-next/bridge.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.js');

const K = global.Kusto.Language;
const S = K.Symbols;
const schema = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const kqlType = { boolean: 'bool' };
const cols = schema.columns.map((c) => `${c.name}:${kqlType[c.type] || c.type}`).join(', ');
const table = new S.TableSymbol.$ctor7(schema.table, `(${cols})`, null);
// Standard workspace tables some KPIs read (Syslog, SecurityAlert): declared beside this script.
const workspacePath = require('path').join(__dirname, 'workspace_tables.json');
const workspace = fs.existsSync(workspacePath) ? JSON.parse(fs.readFileSync(workspacePath, 'utf8')).tables : [];
const tables = [table, ...workspace.map((t) => new S.TableSymbol.$ctor7(
  t.table, `(${t.columns.map((c) => `${c.name}:${kqlType[c.type] || c.type}`).join(', ')})`, null))];
let database = null;
for (const k of Object.keys(S.DatabaseSymbol).filter((n) => n.startsWith('$ctor'))) {
  try {
    const d = new S.DatabaseSymbol[k]('workspace', tables);
    if (d && d.Tables && d.Tables.Count === tables.length) { database = d; break; }
  } catch (e) { /* try the next overload */ }
}
if (!database || table.Columns.Count !== schema.columns.length) {
  console.error('check_kql: could not build the table symbol');
  process.exit(2);
}
const globals = K.GlobalState.Default.WithDatabase(database);

let failed = 0;
for (const file of process.argv.slice(3)) {
  const text = fs.readFileSync(file, 'utf8');
  const diagnostics = K.KustoCode.ParseAndAnalyze(text, globals).GetDiagnostics();
  const errors = [];
  for (let i = 0; i < diagnostics.Count; i++) {
    const d = diagnostics.getItem(i);
    if (d.Severity === 'Error') errors.push(`${d.Message} at ${JSON.stringify(text.substr(d.Start, 40))}`);
  }
  if (errors.length) {
    failed++;
    console.log(`   FAIL ${file}`);
    errors.forEach((e) => console.log(`        ${e}`));
  } else {
    console.log(`   ok   ${file}`);
  }
}
console.log(`   kql: ${process.argv.length - 3 - failed} of ${process.argv.length - 3} files analysed without errors`);
process.exit(failed ? 1 : 0);
