// APIPromise: what AutoBatcher's methods return, shaped like openai-node's (a real Promise subclass with
// `withResponse()` and `asResponse()`), so code that uses those helpers keeps working. A batch result has no HTTP
// response of its own, so the `Response` is synthesized from the result line, and only when asked for. The engine
// builds each call's promise as an APIPromise directly, so a call costs one promise, not a wrapper around another.

/** As openai-node's `WithRequestID`: objects carry a non-enumerable `_request_id` when the provider gave one. */
export type WithRequestID<T> = T extends Array<any> | Response
  ? T
  : T extends Record<string, any>
    ? T & { _request_id?: string | null }
    : T;

export class APIPromise<T> extends Promise<WithRequestID<T>> {
  #response: Promise<{ data: WithRequestID<T>; response: Response }> | undefined;

  // Derived promises (`then`, `catch`, ...) are plain Promises: built-in methods must never call our constructor.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  /** The result with a `Response` synthesized from it (status 200, JSON body, `x-request-id` when known). */
  withResponse(): Promise<{ data: WithRequestID<T>; response: Response; request_id: string | null }> {
    this.#response ??= this.then((data) => ({ data, response: toResponse(data) }));
    return this.#response.then(({ data, response }) => ({
      data,
      response: response.clone(),
      request_id: response.headers.get("x-request-id"),
    }));
  }

  /** The synthesized `Response` alone; its body is the result as AutoBatcher returns it. */
  asResponse(): Promise<Response> {
    return this.withResponse().then(({ response }) => response);
  }
}

function toResponse(data: unknown): Response {
  const headers = new Headers({ "content-type": "application/json" });
  const requestId =
    typeof data === "object" && data !== null ? (data as { _request_id?: unknown })._request_id : undefined;
  if (typeof requestId === "string") headers.set("x-request-id", requestId);
  return new Response(JSON.stringify(data), { status: 200, headers });
}
