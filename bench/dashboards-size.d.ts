export const BUDGET_BYTES: number;
export function measureDashboards(): {
  files: { file: string; bytes: number; gzip: number; initial: boolean }[];
  firstPageGzip: number;
  budget: number;
  ok: boolean;
};
