// APIPromise: what AutoBatcher's methods return, shaped like openai-node's (a real Promise subclass with
// `withResponse()` and `asResponse()`), so code that uses those helpers keeps working. A batch result has no HTTP
// response of its own, so the `Response` is synthesized from the result line, and only when asked for.

/** As openai-node's `WithRequestID`: objects carry a non-enumerable `_request_id` when the provider gave one. */
export type WithRequestID<T> = T extends Array<any> | Response ? T : T extends Record<string, any> ? T & { _request_id?: string | null } : T;

export class APIPromise<T> extends Promise<WithRequestID<T>> {
  readonly #data: Promise<WithRequestID<T>>;
  #response: Promise<{ data: WithRequestID<T>; response: Response }> | undefined;

  // Derived promises (`then`, `catch`, ...) are plain Promises: built-in methods must never call our constructor.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  constructor(data: Promise<T>) {
    // The base promise is never observed (then/catch/finally are overridden), so it resolves at once and cannot
    // report an unhandled rejection of its own; `data` carries the outcome.
    super((resolve) => resolve(undefined as WithRequestID<T>));
    this.#data = data as Promise<WithRequestID<T>>;
  }

  /** The result with a `Response` synthesized from it (status 200, JSON body, `x-request-id` when known). */
  withResponse(): Promise<{ data: WithRequestID<T>; response: Response; request_id: string | null }> {
    this.#response ??= this.#data.then((data) => ({ data, response: toResponse(data) }));
    return this.#response.then(({ data, response }) => ({ data, response: response.clone(), request_id: response.headers.get("x-request-id") }));
  }

  /** The synthesized `Response` alone; its body is the result as AutoBatcher returns it. */
  asResponse(): Promise<Response> {
    return this.withResponse().then(({ response }) => response);
  }

  override then<R1 = WithRequestID<T>, R2 = never>(
    onfulfilled?: ((value: WithRequestID<T>) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: any) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#data.then(onfulfilled, onrejected);
  }

  override catch<R = never>(onrejected?: ((reason: any) => R | PromiseLike<R>) | null): Promise<WithRequestID<T> | R> {
    return this.#data.catch(onrejected);
  }

  override finally(onfinally?: (() => void) | null): Promise<WithRequestID<T>> {
    return this.#data.finally(onfinally);
  }
}

function toResponse(data: unknown): Response {
  const headers = new Headers({ "content-type": "application/json" });
  const requestId = typeof data === "object" && data !== null ? (data as { _request_id?: unknown })._request_id : undefined;
  if (typeof requestId === "string") headers.set("x-request-id", requestId);
  return new Response(JSON.stringify(data), { status: 200, headers });
}
