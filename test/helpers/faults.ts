/**
 * A client with some of its methods replaced, for injecting faults into a real store or Redis
 * client handed to the code under test; every other method is the real one, bound to the client.
 */
type Method = (...args: never[]) => unknown;

/**
 * `target` whose method `name` is `replace(name)` where that gives one, the real method otherwise (asked at each call
 * site's lookup).
 */
export function withMethods<T extends object>(target: T, replace: (name: string | symbol) => Method | undefined): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value: unknown = Reflect.get(object, property, receiver);
      if (typeof value !== 'function') return value;
      return replace(property) ?? (value as Method).bind(object);
    },
  });
}
