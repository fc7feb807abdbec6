export function dashboardsStale(): boolean;
export function ensureDashboards(opts?: {
  force?: boolean;
  out?: (line: string) => void;
}): 'fresh' | 'built' | 'kept' | 'missing';
