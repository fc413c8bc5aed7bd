// Compiles the cocoon Tolk contracts with the pinned @ton/tolk-js and writes
// <name>.boc.b64 (base64 BOC of the code cell) next to this script.
// Usage: node build.js [outDir]
const fs = require('fs');
const path = require('path');
const { runTolkCompiler, getTolkCompilerVersion } = require('@ton/tolk-js');

const contracts = ['registry', 'proxy'];

async function main() {
    const outDir = process.argv[2] || __dirname;
    const version = await getTolkCompilerVersion();
    for (const name of contracts) {
        const result = await runTolkCompiler({
            entrypointFileName: `${name}.tolk`,
            fsReadCallback: p => fs.readFileSync(path.join(__dirname, 'tolk', p), 'utf-8'),
        });
        if (result.status === 'error') {
            throw new Error(`${name}: ${result.message}`);
        }
        fs.writeFileSync(path.join(outDir, `${name}.boc.b64`), result.codeBoc64 + '\n');
        console.log(`tolk ${version}: ${name} ${result.codeHashHex}`);
    }
}

main().catch(e => { console.error(e.message || e); process.exit(1); });
