/** The OpInfo rows of matmul, linear, conv2d, pooling, LRN, dropout, softmax, crossEntropy and SGD (table.ts), on every device. */

import { runOpInfo } from "./run.ts";
import { TABLE_PARTS, TABLE_PARTS_2 } from "./table.ts";

const { matmuls, spatial, pooling, dropouts, softmaxes, optimizers } = {
  ...TABLE_PARTS,
  ...TABLE_PARTS_2,
};
runOpInfo([matmuls, spatial, pooling, dropouts, softmaxes, optimizers].flat());
