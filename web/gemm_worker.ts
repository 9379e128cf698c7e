/**
 * The gemm's second thread for the page: `cpu/kernels/gemm_worker.ts` bundled as
 * `dist/gemm_worker.js`, which the training worker passes to
 * `setCpuOptions({ threads: 2, workerUrl })` (a bundle has no `cpu/kernels/` folder beside it
 * for the default URL).
 *
 * @module
 */

import "../cpu/kernels/gemm_worker.ts";
