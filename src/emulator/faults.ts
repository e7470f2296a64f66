// Fault injection: specs matched by route key (and optionally the :id parameter), each firing
// `times` times after letting `after` matching requests through.
import { z } from "zod";
import type { FaultController, FaultSpec } from "./types.js";

const base = {
  route: z.string().min(1),
  id: z.string().optional(),
  times: z.number().int().positive().nullable().optional(),
  after: z.number().int().nonnegative().optional(),
};

const faultSchema = z.union([
  z.strictObject({
    ...base,
    status: z.number().int().min(100).max(599),
    headers: z.record(z.string(), z.string()).optional(),
    body: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
    afterHandler: z.boolean().optional(),
  }),
  z.strictObject({ ...base, reset: z.literal(true), afterHandler: z.boolean().optional() }),
  z.strictObject({ ...base, delayMs: z.number().nonnegative().max(600_000) }),
  z.strictObject({ ...base, cutAfterBytes: z.number().int().nonnegative() }),
  z.strictObject({ ...base, trickleMs: z.number().positive().max(60_000) }),
]);

export class FaultError extends Error {}

interface ActiveFault {
  faultId: string;
  spec: FaultSpec;
  seen: number;
  fired: number;
}

export class Faults implements FaultController {
  #faults: ActiveFault[] = [];
  #next = 1;

  constructor(private readonly routeKeys: readonly string[]) {}

  add(spec: FaultSpec): string {
    const parsed = faultSchema.safeParse(spec);
    if (!parsed.success) {
      throw new FaultError(
        `invalid fault spec: ${parsed.error.issues.map((i) => `${i.path.join(".") || "spec"}: ${i.message}`).join("; ")}`,
      );
    }
    if (spec.route !== "*" && !this.routeKeys.includes(spec.route)) {
      throw new FaultError(
        `invalid fault spec: unknown route key '${spec.route}' (known: ${this.routeKeys.join(", ")}, *)`,
      );
    }
    const faultId = `fault_${this.#next++}`;
    this.#faults.push({ faultId, spec: parsed.data as FaultSpec, seen: 0, fired: 0 });
    return faultId;
  }

  remove(id: string): boolean {
    const before = this.#faults.length;
    this.#faults = this.#faults.filter((f) => f.faultId !== id);
    return this.#faults.length < before;
  }

  clear(): void {
    this.#faults = [];
  }

  list(): Array<FaultSpec & { faultId: string; fired: number }> {
    return this.#faults.map((f) => ({ ...f.spec, faultId: f.faultId, fired: f.fired }));
  }

  /** The first fault that fires for this request, if any (the earliest added wins). */
  take(routeKey: string, id: string): FaultSpec | undefined {
    for (const f of this.#faults) {
      if (f.spec.route !== "*" && f.spec.route !== routeKey) continue;
      if (f.spec.id !== undefined && f.spec.id !== id) continue;
      f.seen++;
      if (f.seen <= (f.spec.after ?? 0)) continue;
      f.fired++;
      const times = f.spec.times === undefined ? 1 : f.spec.times;
      if (times !== null && f.fired >= times) this.remove(f.faultId);
      return f.spec;
    }
    return undefined;
  }
}
