"use strict";
// Progressive enhancement of the admin forms, with no library: the server renders the right
// parts on its own (?kind=, ?partner=); this only spares a reload or a failed save.
document.addEventListener("DOMContentLoaded", function () {
  function reloadWith(changed) {
    // Reload the page asking for the part that follows a choice, keeping the other choices made.
    const url = new URL(window.location.href);
    document.querySelectorAll("[data-reload-keep]").forEach(function (element) {
      if (element.value) url.searchParams.set(element.name, element.value);
    });
    url.searchParams.set(changed.name, changed.value);
    window.location.assign(url.toString());
  }

  document.querySelectorAll("select[data-reload-on-change]").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.value) reloadWith(select);
    });
  });

  // Postback form: only the part of the chosen kind, and the rows that apply to the chosen partner.
  const kind = document.querySelector("select[name=kind]");
  const kindFieldsets = document.querySelectorAll("fieldset.postback-kind");
  const partnerConfiguration = document.querySelector("select[data-partner-kinds]");
  function showRow(name, shown) {
    const row = document.querySelector(".form-row.field-" + name);
    if (row) row.classList.toggle("hidden", !shown);
  }
  function applyKind() {
    const chosen = kind.value;
    if (chosen && !document.querySelector("fieldset.postback-kind-" + chosen)) {
      reloadWith(kind); // a saved postback, or a failed save, renders its own kind's part only
      return;
    }
    kindFieldsets.forEach(function (fieldset) {
      fieldset.classList.toggle("hidden", !fieldset.classList.contains("postback-kind-" + chosen));
    });
    let partnerKind = "";
    if (partnerConfiguration && partnerConfiguration.value) {
      partnerKind = JSON.parse(partnerConfiguration.dataset.partnerKinds)[partnerConfiguration.value] || "";
    }
    showRow("delivery_method", chosen !== "custom" && partnerKind !== "analytics");
    showRow("supply_network_data", chosen === "custom" || partnerKind === "" || partnerKind === "analytics");
  }
  if (kind && kindFieldsets.length) {
    kind.addEventListener("change", applyKind);
    if (partnerConfiguration) partnerConfiguration.addEventListener("change", applyKind);
    applyKind();
  }

  // Macros: a filter box over the grouped checkboxes.
  document.querySelectorAll("div.macro-choices").forEach(function (choices) {
    const filter = document.createElement("input");
    filter.type = "search";
    filter.placeholder = "Filter macros, e.g. idfa or campaign";
    filter.className = "macro-filter";
    choices.insertBefore(filter, choices.firstChild);
    filter.addEventListener("input", function () {
      const wanted = filter.value.trim().toLowerCase();
      choices.querySelectorAll("input[type=checkbox]").forEach(function (checkbox) {
        const option = checkbox.closest("label").parentNode;
        option.classList.toggle("hidden", wanted !== "" && !option.textContent.toLowerCase().includes(wanted));
      });
      choices.querySelectorAll(":scope > div").forEach(function (group) {
        const options = group.querySelectorAll("input[type=checkbox]");
        const visible = Array.from(options).some(function (checkbox) {
          return !checkbox.closest("label").parentNode.classList.contains("hidden");
        });
        group.classList.toggle("hidden", options.length > 1 && !visible);
      });
    });
  });
});
