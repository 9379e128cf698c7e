/** The OpInfo rows of the elementwise ops (table.ts), on every device. */

import { runOpInfo } from "./run.ts";
import { TABLE_PARTS, TABLE_PARTS_2 } from "./table.ts";

const { elementwise } = { ...TABLE_PARTS, ...TABLE_PARTS_2 };
runOpInfo(elementwise);
