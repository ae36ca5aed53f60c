// Forms: every field's error under its field, all at once (the browser's own checks first, then the
// server's answer, which names the field it is about). The page's own messages come from the catalog;
// the server's are shown as they came (the API speaks English), in a .val span.
import { val } from './i18n.js';

export function clearErrors(form) {
  for (const p of form.querySelectorAll('.field-error, .form-error')) { p.hidden = true; p.replaceChildren(); }
}

// errors: {field: message (text, or a node)}; a field without a slot of its own goes to the form's
// .form-error (or a notice).
export function showErrors(form, errors) {
  let first = null;
  for (const [field, message] of Object.entries(errors)) {
    const slot = form.querySelector(`.field-error[data-for="${field}"]`) || form.querySelector('.form-error');
    if (!slot) continue;
    if (slot.childNodes.length) slot.append(' ');
    slot.append(message);
    slot.hidden = false;
    first ||= form.querySelector(`[name="${field}"]`);
  }
  first?.focus();
  return Object.keys(errors).length > 0;
}

// The server's message, as a value: its own words, not the catalog's.
export function serverMessage(error) {
  return val(error.message);
}

// An ApiError as {field: message}; `rename` maps the server's field ("quota.vcpus") to the form's.
export function serverError(error, rename = (field) => field.split('.')[0]) {
  return { [rename(error.field || '') || '_form']: serverMessage(error) };
}
