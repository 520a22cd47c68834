// Validates AsyncAPI documents with the official parser (its spectral
// ruleset: schema, references, operations and channels); prints every
// diagnostic of severity error or warning with its path and exits 1 on any
// error, so `make lint` refuses a document other AsyncAPI tools would refuse.
//
//   node validate.mjs ../../topics/asyncapi.yaml
import { Parser, fromFile } from '@asyncapi/parser';

const severities = ['error', 'warning', 'info', 'hint'];
const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await fromFile(parser, file).parse();
  for (const d of diagnostics) {
    if (d.severity > 1) continue;
    const where = d.path.length ? d.path.join('.') : '(document)';
    console.log(`${file}: ${where}: ${severities[d.severity]}: ${d.message} [${d.code}]`);
    if (d.severity === 0) failed = true;
  }
  if (!document) failed = true;
  else console.log(`${file}: AsyncAPI ${document.version()} OK (${document.channels().length} channels)`);
}
process.exit(failed ? 1 : 0);
