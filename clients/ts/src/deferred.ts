export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
  settled: boolean;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // Nobody may be waiting: never an unhandled rejection.
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve(value) {
      if (!d.settled) {
        d.settled = true;
        resolve(value);
      }
    },
    reject(error) {
      if (!d.settled) {
        d.settled = true;
        reject(error);
      }
    },
  };
  return d;
}
