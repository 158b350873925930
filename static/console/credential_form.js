// A new credential's page: of the per-kind groups of secret and scope fields, show and send only
// the ones of the secret kind and scope kind picked above (without scripts every group shows, and
// the server refuses a part typed for a kind other than the picked one, on that part's field).
"use strict";
(function () {
  const follow = (selectId, group) => {
    const select = document.getElementById(selectId);
    if (!select) {
      return;
    }
    const update = () => {
      document.querySelectorAll("fieldset.ag-kind-parts").forEach((fieldset) => {
        const prefix = "ag-" + group + "-";
        const mine = [...fieldset.classList].find((name) => name.startsWith(prefix));
        if (mine) {
          const other = mine !== prefix + select.value;
          // Another kind's fields are disabled, so they are not sent: a value typed before
          // switching kinds cannot be refused on a field nobody sees. A group holding an error
          // from the server stays in sight, so the refusal is never hidden.
          fieldset.disabled = other;
          fieldset.hidden = other && !fieldset.querySelector(".errorlist");
        }
      });
    };
    select.addEventListener("change", update);
    update();
  };
  document.addEventListener("DOMContentLoaded", () => {
    follow("id_kind", "secret");
    follow("id_scope_kind", "scope");
  });
})();
