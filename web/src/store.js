// A tiny observable store and a preact hook to read it.
import { useEffect, useState } from "preact/hooks";

export class Store {
  constructor(state) {
    this.state = state;
    this.listeners = new Set();
  }

  get() {
    return this.state;
  }

  set(patch) {
    this.state = { ...this.state, ...patch };
    for (const fn of this.listeners) fn(this.state);
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/** The store's state, re-rendering the component when it changes. */
export function useStore(store) {
  const [state, setState] = useState(store.get());
  useEffect(() => {
    setState(store.get());
    return store.subscribe(setState);
  }, [store]);
  return state;
}
