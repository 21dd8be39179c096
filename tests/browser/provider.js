// A test-only EIP-1193 wallet, injected into the page before the app loads: it announces
// itself through EIP-6963 and forwards every request to Python (page.expose_function
// "__edgeshareWallet"), which answers from anvil (anvil signs for its dev accounts) or
// plays the test's mode (a wrong chain, a rejected request). With
// window.__edgeshareLegacyWallet set first it is an old-style wallet instead: only
// window.ethereum, no EIP-6963 announcement. Never shipped.
(() => {
  const listeners = new Map();
  const emit = (event, value) => (listeners.get(event) || []).forEach((fn) => fn(value));
  const provider = {
    isEdgeShareTestWallet: true,
    async request({ method, params }) {
      const answer = JSON.parse(await window.__edgeshareWallet(JSON.stringify({ method, params: params || [] })));
      if (answer.error) {
        const err = new Error(answer.error.message);
        err.code = answer.error.code;
        if (answer.error.data !== undefined) err.data = answer.error.data;
        throw err;
      }
      if (answer.event) emit(answer.event.name, answer.event.value);
      return answer.result;
    },
    on(event, fn) {
      listeners.set(event, [...(listeners.get(event) || []), fn]);
    },
    removeListener(event, fn) {
      listeners.set(event, (listeners.get(event) || []).filter((f) => f !== fn));
    },
  };
  const info = Object.freeze({
    uuid: "6f1c3c5e-2b1a-4e55-9d3e-000000edge00",
    name: "EdgeShare Test Wallet",
    icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E",
    rdns: "org.edgeshare.testwallet",
  });
  if (window.__edgeshareLegacyWallet) {
    window.ethereum = provider;
    return;
  }
  const announce = () =>
    window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
