// Behaviour of the Sluice OPS pages that HTML alone does not give. Served as a
// file: the Content-Security-Policy allows no inline script.
document.addEventListener("focusin", function (e) {
  if (e.target.classList && e.target.classList.contains("select-on-focus")) {
    e.target.select();
  }
});
