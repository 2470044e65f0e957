// disco's dashboard: follows the watcher's event stream (/events) and draws what it sends.
// Every text from the watcher (names, tags, reasons from Consul) goes into the page as text, never as markup.
"use strict";
(() => {
  const LOST_AFTER = 6000; // ms without a message (the watcher pings every 2 s)
  const STATUS = { absent: "not listed", unknown: "unknown: Consul does not answer" };
  const $ = (id) => document.getElementById(id);
  let source = null;
  let heardAt = 0;
  let dataAt = null;
  let lost = null; // why the stream is down, or null
  let everConnected = false;
  const sections = new Map(); // service name -> {key, node}
  const alerts = new Map(); // alert id -> text

  function h(tag, props, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return node;
  }
  const time = (s) => (s ? new Date(s * 1000).toLocaleTimeString() : "never");

  function setAlert(id, text) {
    if (text) alerts.set(id, text);
    else alerts.delete(id);
    const box = $("alerts");
    const want = [...alerts.entries()];
    const have = [...box.children].map((p) => [p.dataset.id, p.textContent]);
    if (JSON.stringify(want) === JSON.stringify(have)) return;
    box.replaceChildren(...want.map(([k, t]) => h("p", { class: "alert", "data-id": k }, t)));
  }

  function connect() {
    if (source) source.close();
    source = new EventSource("events");
    source.addEventListener("state", (e) => {
      heard();
      draw(JSON.parse(e.data));
    });
    source.addEventListener("ping", heard);
    source.onopen = heard;
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000); // refused: try again ourselves
      goneQuiet("the connection to the watcher broke");
    };
  }

  function heard() {
    heardAt = Date.now();
    everConnected = true;
    if (lost !== null) {
      lost = null;
      document.body.classList.remove("stale");
      setAlert("watcher", null);
    }
    $("connection").textContent = "Live: updated by the watcher as changes happen" + (dataAt ? ` (last at ${time(dataAt)})` : "");
    $("connection").className = "conn live";
  }

  function goneQuiet(why) {
    if (lost !== null) return;
    lost = why;
    document.body.classList.add("stale");
    const asOf = dataAt ? `what is shown is from ${time(dataAt)} and may be out of date` : "nothing to show yet";
    setAlert("watcher", `The watcher does not answer (${why}, at ${new Date().toLocaleTimeString()}): ${asOf}. Retrying…`);
    $("connection").textContent = everConnected ? "Disconnected from the watcher" : "Cannot reach the watcher";
    $("connection").className = "conn down";
  }

  setInterval(() => {
    if (lost === null && heardAt && Date.now() - heardAt > LOST_AFTER) {
      goneQuiet("no message for " + Math.round(LOST_AFTER / 1000) + " s");
      connect();
    }
  }, 1000);

  function draw(state) {
    dataAt = state.generated_at;
    heard();
    const about = state.about || {};
    $("version").textContent = about.version ? "v" + about.version : "";
    const hap = state.haproxy || {};
    const consulDown = state.consul_up === false || state.consul_error;
    setAlert("consul", consulDown ? `Consul does not answer${state.consul_error ? ": " + state.consul_error : ""}. HAProxy keeps its servers; the Consul column is not current.` : null);
    const facts = [
      ["disco", about.version],
      ["Consul", (about.consul || "?") + (consulDown ? " — not answering" : state.consul_up ? " — answering" : "")],
      ["HAProxy", [hap.version ? "version " + hap.version : null, hap.pid ? "worker pid " + hap.pid : null, hap.error].filter(Boolean).join(", ") || "not asked"],
      ["Config file", about.output],
      ["Reload through", about.reload || "nothing (file only)"],
      ["Live updates", about.runtime_socket ? "runtime API at " + about.runtime_socket : "off (no --runtime-socket)"],
      ["Failover datacenters", (about.failover_dcs || []).join(", ") || "none"],
      ["Operator overrides", about.overrides_prefix ? overridesText(state.overrides || {}, about.overrides_prefix) : "not followed"],
      ["Follows", (about.discover ? "--service names and every service with a route tag" : "--service names") + (about.tag ? `, tag ${about.tag}` : "") + `; watch mode ${about.watch_mode}`],
      ["Last apply", time(state.last_apply)],
    ];
    $("about").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "?")]));
    $("notes").replaceChildren(...(state.notes || []).map((n) => h("li", {}, n)));

    const services = state.services || [];
    const list = $("service-list");
    const names = new Set(services.map((s) => s.name));
    for (const [name, entry] of sections) if (!names.has(name)) { entry.node.remove(); sections.delete(name); }
    services.forEach((svc, i) => {
      const key = JSON.stringify(svc) + "|" + (state.held || {})[svc.name];
      let entry = sections.get(svc.name);
      if (!entry || entry.key !== key) {
        const node = serviceSection(svc, (state.held || {})[svc.name] || svc.held);
        if (entry) entry.node.replaceWith(node);
        entry = { key, node };
        sections.set(svc.name, entry);
      }
      if (list.children[i] !== entry.node) list.insertBefore(entry.node, list.children[i] || null);
    });
    if (!services.length) list.replaceChildren(h("p", {}, "No service followed yet."));
    else [...list.children].filter((n) => !n.classList.contains("service")).forEach((n) => n.remove());
    $("service-nav").replaceChildren(...services.map((s, i) => h("li", {}, h("a", { href: "#svc-" + i }, s.name))));
    services.forEach((s, i) => { const e = sections.get(s.name); e.node.id = "svc-" + i; e.node.setAttribute("aria-labelledby", "svc-" + i + "-h"); e.node.querySelector("h3").id = "svc-" + i + "-h"; });

    const rows = (state.timeline || []).slice(-50).reverse();
    $("timeline").tBodies[0].replaceChildren(...rows.map((e) =>
      h("tr", { class: "ev-" + e.kind }, h("td", {}, time(e.at)), h("td", {}, e.kind), h("td", {}, e.service || "—"), h("td", {}, e.text))));

    const servers = services.reduce((n, s) => n + s.servers.length, 0);
    const drift = services.reduce((n, s) => n + s.servers.filter((r) => r.drift).length, 0);
    const held = services.filter((s) => (state.held || {})[s.name] || s.held).length;
    const summary = `${services.length} services, ${servers} servers` + (drift ? `, ${drift} drifting` : "") + (held ? `, ${held} held by the gate` : "") + (consulDown ? ", Consul not answering" : "");
    if ($("announce").textContent !== summary) $("announce").textContent = summary;
  }

  function overridesText(ov, prefix) {
    if (ov.error) return `under ${prefix}: unknown (${ov.error})`;
    const n = (ov.in_force || []).length;
    const bad = (ov.malformed || []).length;
    return `under ${prefix}: ${n} in force` + (bad ? `, ${bad} malformed (ignored)` : "");
  }

  function serviceSection(svc, held) {
    const settings = Object.entries(svc.settings || {}).map(([k, v]) => `${k.replace("_", " ")} ${v === true ? "on" : v}`);
    const flags = [];
    if (held) flags.push(h("p", { class: "flag hold" }, h("strong", {}, "Held: "), `the sanity gate holds the newest change of ${svc.name} (${held}); HAProxy keeps the servers it had.`));
    for (const o of svc.overrides || []) flags.push(h("p", { class: "flag override" }, h("strong", {}, "Operator override: "), `${o} (key ${svc.override_key}).`));
    if (svc.consul_error) flags.push(h("p", { class: "flag drift" }, h("strong", {}, "Consul: "), svc.consul_error));
    if (svc.haproxy_error) flags.push(h("p", { class: "flag drift" }, h("strong", {}, "HAProxy did not answer: "), svc.haproxy_error));
    return h("section", { class: "service", "data-service": svc.name },
      h("h3", {}, svc.name),
      flags,
      h("dl", { class: "facts" },
        h("dt", {}, "Routes"), h("dd", {}, h("ul", {}, svc.routes.map((r) => h("li", {}, h("code", {}, r))))),
        h("dt", {}, "Settings"), h("dd", {}, settings.length ? settings.join(", ") : "defaults")),
      serverTable(svc));
  }

  function serverTable(svc) {
    const head = h("thead", {},
      h("tr", {},
        h("th", { scope: "col", rowspan: 2 }, "Server"),
        h("th", { scope: "colgroup", colspan: 2, class: "g-consul" }, "Consul"),
        h("th", { scope: "col", rowspan: 2, class: "g-file" }, "Config file"),
        h("th", { scope: "colgroup", colspan: 5, class: "g-haproxy" }, "HAProxy"),
        h("th", { scope: "col", rowspan: 2 }, "Verdict")),
      h("tr", {},
        h("th", { scope: "col", class: "g-consul" }, "Status"), h("th", { scope: "col", class: "g-consul" }, "Why not routed"),
        ...["Address", "State", "Weight", "Check", "Sessions"].map((t) => h("th", { scope: "col", class: "g-haproxy" }, t))));
    const none = svc.servers.length ? null : h("tr", {}, h("td", { colspan: 10 }, "No server: Consul, the file and HAProxy list none."));
    const body = h("tbody", {}, none, svc.servers.map((s) => {
      const c = s.consul || {};
      const x = s.haproxy;
      const verdict = s.drift ? h("span", { class: "flag drift" }, "DRIFT: " + s.drift)
        : s.override ? h("span", { class: "flag pending" }, `In step, held in ${s.override} by an operator override`)
        : s.pending ? h("span", { class: "flag pending" }, "Pending: " + s.pending)
        : h("span", { class: "flag ok" }, c.routed || s.file || x ? "In step" : "In step: not routed");
      return h("tr", { "data-server": s.name },
        h("th", { scope: "row" }, s.name),
        h("td", { class: "status-" + c.status }, (STATUS[c.status] || c.status) + (c.dc ? ` in ${c.dc}` : "") + (c.routed ? (c.dc ? " (backup)" : " (routed)") : "")),
        h("td", {}, c.why && c.why.length ? h("ul", {}, c.why.map((w) => h("li", {}, w))) : "—"),
        h("td", {}, s.file || "not listed"),
        ...(x ? [x.address, x.state, x.weight ?? "—", [x.status, x.check].filter(Boolean).join(": ") || "—", x.sessions ?? "—"].map((v, i) => h("td", { class: i === 1 ? "state-" + x.state : null }, v))
          : [h("td", { colspan: 5 }, !svc.haproxy_asked ? "not asked" : svc.haproxy_error ? "unknown" : "not running it")]),
        h("td", {}, verdict));
    }));
    return h("table", { class: "servers" },
      h("caption", {}, `Servers of ${svc.name}: Consul, the config file and HAProxy side by side`),
      head, body);
  }

  connect();
})();
