// hookline portal: the little that needs a script. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: data-copy names the input whose value to copy.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      if (!field) return;
      field.select();
      var done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 2000);
      };
      // "Copied" only when it was: otherwise the text stays selected for the person to copy.
      var fallback = function () {
        if (document.execCommand("copy")) done();
        else button.textContent = "Press Ctrl+C";
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, fallback);
      } else {
        fallback();
      }
    });
  });
  // Forms that ask before doing something that cannot be undone.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
  // "Go back" on an error page: to the page the failed form was on, with what was typed.
  document.querySelectorAll("[data-back]").forEach(function (link) {
    if (window.history.length > 1) {
      link.hidden = false;
      link.addEventListener("click", function (event) { event.preventDefault(); window.history.back(); });
    }
  });
  // A portal link's page continues by itself (a person without scripts presses the button).
  var auto = document.querySelector("form[data-autosubmit]");
  if (auto) auto.submit();
});
