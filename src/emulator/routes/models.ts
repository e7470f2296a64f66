// GET /v1/models and /v1/models/{id}.
import { json, type Reply } from "../reply.js";
import type { RouteContext, RouteRequest } from "./context.js";

/** Many clients probe the model list. The built-in model answers to any name, so `:id` always exists. */
function modelObject(id: string): Record<string, unknown> {
  return { id, object: "model", created: 0, owned_by: "autobatch-emulator" };
}

export async function listModels(): Promise<Reply> {
  return json(200, { object: "list", data: [modelObject("autobatch-emulator")] });
}

export async function getModel(_ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
  return json(200, modelObject(id));
}
