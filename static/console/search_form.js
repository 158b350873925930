// Search boxes (the header's, the search page's, every list's): a pasted API key is rewritten
// to its public form (u_<id> / org_<id>) before the form is sent. A GET form puts its field in
// the request line, so without this the secret would reach proxy and ingress logs and the
// browser's history before the server's redirect (the backstop) could drop it.
// Same rule as apps.accounts.tokens.redacted_key_text.
(function () {
  "use strict";
  var KEY = /(?<![0-9a-z])(u|org)_([0-9a-f]{16})(?![0-9a-f])/i;

  function publicForm(text) {
    var found = KEY.exec(text);
    if (!found) {
      return null;
    }
    var shown = found[1].toLowerCase() + "_" + found[2].toLowerCase();
    return text.trim() === shown ? null : shown;
  }

  function guard(form) {
    form.addEventListener("submit", function () {
      var box = form.querySelector('input[name="q"]');
      if (!box) {
        return;
      }
      var shown = publicForm(box.value);
      if (shown !== null) {
        box.value = shown;
      }
    });
  }

  function start() {
    var forms = document.querySelectorAll(
      "form#ag-search, form.ag-search-again, form#changelist-search"
    );
    for (var i = 0; i < forms.length; i++) {
      guard(forms[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
