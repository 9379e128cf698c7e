/**
 * The gemm's second thread for the page: `wasm/gemm_worker.ts` bundled as
 * `dist/gemm_worker.js`, which the training worker passes to `setThreads(2, { workerUrl })`
 * (a bundle has no `wasm/` folder beside it for the default URL).
 *
 * @module
 */

import "../wasm/gemm_worker.ts";
