/* The public-map page's "copy the code" button: the iframe snippet to the clipboard. */
(function () {
  'use strict';
  var button = document.getElementById('copy-snippet');
  var snippet = document.getElementById('embed-snippet');
  var status = document.getElementById('copy-status');
  if (!button || !snippet) { return; }
  button.addEventListener('click', function () {
    var done = function () { status.textContent = button.dataset.copied; };
    snippet.select();
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(snippet.value).then(done, function () {
        if (document.execCommand('copy')) { done(); }
      });
    } else if (document.execCommand('copy')) {
      done();
    }
  });
})();
