// The language switch in the top bar: the choice goes in a cookie the server reads for every page
// (vmdeck.api.i18n), so it outlives signing out and in; the page reloads in the new language.
const select = document.getElementById('lang-switch');
if (select) {
  select.addEventListener('change', () => {
    document.cookie = `vmdeck_lang=${encodeURIComponent(select.value)}; path=/; max-age=31536000; samesite=lax`;
    location.reload();
  });
}
