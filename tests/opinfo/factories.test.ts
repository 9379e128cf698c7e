/** The OpInfo rows of the factories (table.ts), on every device. */

import { runOpInfo } from "./run.ts";
import { TABLE_PARTS, TABLE_PARTS_2 } from "./table.ts";

const { factories } = { ...TABLE_PARTS, ...TABLE_PARTS_2 };
runOpInfo(factories);
