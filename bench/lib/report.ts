// Turns scenario results into the markdown table docs/performance.md quotes, with each target checked.

export interface Row {
  metric: string;
  value: string;
  /** Empty for figures reported without a target. */
  target: string;
  met?: boolean;
}

export function table(rows: Row[]): string {
  const lines = ["| Metric | Result | Target | Met |", "| --- | --- | --- | --- |"];
  for (const r of rows)
    lines.push(`| ${r.metric} | ${r.value} | ${r.target} | ${r.met === undefined ? "" : r.met ? "yes" : "**no**"} |`);
  return lines.join("\n");
}

export const ms = (v: number, digits = 1) => `${v.toFixed(digits)} ms`;
export const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
export const ratio = (v: number, digits = 2) => `${v.toFixed(digits)}×`;
export const int = (v: number) => Math.round(v).toLocaleString("en");
export const pct = (v: number) => `${v >= 0 ? "+" : ""}${(v * 100).toFixed(1)} %`;
