// TTE setup page. Reads the OTP from the query and the DevSecret from the fragment (which the
// browser never sent to the Transfer Agent), then: checks the Controller is alive, binds it at
// the Transfer Agent with the OTP, and gives the Controller the DevSecret and label.
// Everything shown to the user goes through textContent: nothing here is parsed as HTML.
"use strict";

(function () {
  const body = document.body;
  const urn = body.dataset.urn;
  const pageState = body.dataset.state;
  const otp = new URLSearchParams(location.search).get("otp") || "";
  const devSecret = location.hash.replace(/^#/, "");
  const $ = (id) => document.getElementById(id);

  const messages = {
    ready: "Scan accepted. Tell us which Controller this device belongs to.",
    used: "This device's one-time password was already used: it is already enrolled with a Controller. " +
      "If that enrollment stopped before the Controller took the device's secret, enter the same Controller URL again to finish it.",
    "bad-otp": "This link's one-time password is missing or wrong. Scan the code on the device again.",
    unknown: "This link does not name a device. Scan the code on the device again.",
  };
  $("state").textContent = messages[pageState] || messages.unknown;
  // A used OTP still shows the form: the Transfer Agent takes a bind repeated with the same
  // Controller URL as a retry (and refuses any other), so an enrollment the Controller refused
  // part-way (full, unreachable) can be finished from the same code.
  if (pageState !== "ready" && pageState !== "used") return;
  if (!/^[A-Za-z0-9_-]{43}$/.test(devSecret)) {
    $("state").textContent = "The scanned link lacks the device secret (the part after #). Scan the code again.";
    return;
  }
  $("setup").hidden = false;

  function step(text) {
    const li = document.createElement("li");
    li.textContent = text + " …";
    $("steps").appendChild(li);
    return {
      ok(msg) { li.className = "ok"; li.textContent = text + (msg ? ": " + msg : ""); },
      fail(msg) { li.className = "fail"; li.textContent = text + ": " + msg; },
    };
  }

  async function errorText(resp) {
    try {
      const j = await resp.json();
      return j.detail || j.error || ("HTTP " + resp.status);
    } catch (_) {
      return "HTTP " + resp.status;
    }
  }

  function finish(ok, text) {
    $("result").className = ok ? "ok" : "fail";
    $("result").textContent = text;
  }

  $("setup").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("submit").disabled = true;
    $("steps").textContent = "";
    finish(true, "");
    const label = $("label").value.trim();
    let cont;
    try {
      cont = new URL($("conturl").value.trim());
    } catch (_) {
      finish(false, "That is not a valid URL.");
      $("submit").disabled = false;
      return;
    }
    const scheme = cont.protocol.replace(/:$/, "");
    if (!["http", "https", "coap", "coaps", "xtt"].includes(scheme)) {
      finish(false, "The Controller URL must start with http, https, coap, coaps or xtt.");
      $("submit").disabled = false;
      return;
    }
    const web = scheme === "http" || scheme === "https";
    const fetchOpts = { cache: "no-store", referrerPolicy: "no-referrer", credentials: "omit" };

    if (web) {
      const s = step("Checking the Controller is reachable");
      try {
        const r = await fetch(cont.origin + "/.well-known/tte1/alive", { ...fetchOpts, mode: "cors" });
        if (!r.ok) throw new Error("it answered HTTP " + r.status);
        s.ok();
      } catch (e) {
        s.fail(e.message || "no answer");
        finish(false, "The Controller did not answer. Check the URL; nothing was changed.");
        $("submit").disabled = false;
        return;
      }
    }

    const b = step("Telling the Transfer Agent which Controller this device belongs to");
    try {
      const r = await fetch("/.well-known/tte1/d/" + urn + "/c", {
        ...fetchOpts,
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ otp: otp, conturl: cont.href }),
      });
      if (!r.ok) throw new Error(await errorText(r));
      b.ok();
    } catch (e) {
      b.fail(e.message);
      finish(false, "Enrollment failed at the Transfer Agent.");
      $("submit").disabled = false;
      return;
    }

    if (!web) {
      $("secret").textContent = devSecret;
      $("manual").hidden = false;
      finish(true, "Bound. Give the device secret below to your Controller.");
      return;
    }

    const a = step("Giving the Controller the device's secret");
    try {
      const r = await fetch(cont.origin + "/.well-known/tte1/c/" + urn + "/k", {
        ...fetchOpts,
        mode: "cors",
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ devSecret: devSecret, label: label || null }),
      });
      if (!r.ok) throw new Error(await errorText(r));
      a.ok();
    } catch (e) {
      a.fail(e.message);
      $("secret").textContent = devSecret;
      $("manual").hidden = false;
      finish(false, "Bound at the Transfer Agent, but the Controller did not take the secret. " +
        "Try again later with the same Controller URL, or enter the secret there by hand.");
      $("submit").disabled = false;
      return;
    }
    // Done: drop the OTP and the secret from the address bar and history.
    history.replaceState(null, "", location.pathname);
    $("setup").hidden = true;
    finish(true, "Device enrolled. It will contact its Controller when it next starts.");
  });
})();
