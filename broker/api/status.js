"use strict";
// The page reads GET /status every two seconds. An admin token (given as #token=... in
// the address, or typed in) is kept in this tab's sessionStorage and sent as a bearer
// token; without one the broker answers with aggregates only.
(function () {
  var m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("fxb-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  var $ = function (id) { return document.getElementById(id); };
  var text = function (v) { return v === null || v === undefined ? "" : String(v); };
  var age = function (ms) {
    var s = Math.floor(ms / 1000);
    return s < 120 ? s + " s" : Math.floor(s / 60) + " min";
  };
  var pairs = function (o) {
    return Object.keys(o || {}).map(function (k) { return k + "=" + o[k]; }).join(", ");
  };
  function fill(id, rows) {
    var body = $(id).tBodies[0];
    body.textContent = "";
    rows.forEach(function (cells) {
      var tr = body.insertRow();
      cells.forEach(function (c) { tr.insertCell().textContent = text(c); });
    });
  }
  function quota(t, q) {
    var lim = t.limits[q];
    return t.used[q] + (lim === null ? "" : " / " + lim);
  }
  function render(st) {
    var p = st.ports;
    fill("pools", [["ports " + p.first + "-" + p.last, p.size, p.free, p.leased, p.quarantined, st.waiting]]);
    var pg = st.postgres || {};
    fill("pgpools", (pg.templates || []).map(function (t) {
      var d = t.database_pool, s = t.schema_pool;
      return [t.template, t.state, d.ready, d.leased, d.cloning, d.waiting, s.ready, s.leased];
    }));
    var full = Array.isArray(st.leases_list);
    $("login").hidden = full;
    fill("tenants", (st.tenants || []).map(function (t) {
      return [t.name, quota(t, "sessions"), quota(t, "ports"), quota(t, "servers"),
        quota(t, "databases"), quota(t, "pg_connections"), quota(t, "waiting")];
    }));
    fill("sessions", (st.sessions_list || []).map(function (s) {
      return [s.session, s.tenant, s.client, s.peer, pairs(s.labels), s.leases, age(s.age_ms)];
    }));
    var leases = st.leases_list || [], servers = [];
    fill("leases", leases.map(function (l) {
      Object.keys(l.fixtures).forEach(function (f) {
        if (l.fixtures[f] === "server") servers.push([l.lease, f, l.tenant, l.client]);
      });
      return [l.lease, l.tenant, l.session, l.client, pairs(l.labels), pairs(l.fixtures), l.state, age(l.age_ms)];
    }));
    fill("servers", servers);
    $("state").textContent = "version " + st.version + ", up " + age(st.uptime_ms) + ", " +
      (st.shutting_down ? "shutting down, " : st.draining ? "draining (" +
        age(st.drain_remaining_ms) + " left), " : "") +
      st.sessions + " session(s), " + st.leases + " lease(s)" +
      (full ? "" : " (aggregates only: an admin token shows who holds what)") +
      ", updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "1";
  }
  function load() {
    var tok = sessionStorage.getItem("fxb-token"), headers = {};
    if (tok) headers.Authorization = "Bearer " + tok;
    fetch("/status", { headers: headers, cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("GET /status: " + r.status);
      return r.json();
    }).then(function (st) { $("error").textContent = ""; render(st); })
      .catch(function (e) { $("error").textContent = e.message; $("login").hidden = false; });
  }
  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    sessionStorage.setItem("fxb-token", $("token").value);
    load();
  });
  load();
  setInterval(load, 2000);
})();
