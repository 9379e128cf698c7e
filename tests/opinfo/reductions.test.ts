/** The OpInfo rows of reductions and layout (table.ts), on every device. */

import { runOpInfo } from "./run.ts";
import { TABLE_PARTS, TABLE_PARTS_2 } from "./table.ts";

const { reductions, layout } = { ...TABLE_PARTS, ...TABLE_PARTS_2 };
runOpInfo([reductions, layout].flat());
