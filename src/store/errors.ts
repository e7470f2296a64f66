// The one error a store raises: it names the file or the URL (never its password) and says what is wrong with it.
import { AutoBatchError } from "../errors.js";

export class StoreError extends AutoBatchError {
  override name = "StoreError";
  /** The store file, or its URL without credentials. */
  readonly location: string;
  constructor(location: string, message: string, options: { cause?: unknown } = {}) {
    super(`store ${location}: ${message}`, options);
    this.location = location;
  }
}
