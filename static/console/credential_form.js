// A new credential's page: of the per-kind groups of secret and scope fields, show only the ones
// of the secret kind and scope kind picked above (without scripts every group shows, and the
// form still uses only the picked kinds' fields).
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
          fieldset.hidden = mine !== prefix + select.value;
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
