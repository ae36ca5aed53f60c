// Forms: every field's error under its field, all at once (the browser's own checks first, then the
// server's answer, which names the field it is about).
export function clearErrors(form) {
  for (const p of form.querySelectorAll('.field-error, .form-error')) { p.hidden = true; p.textContent = ''; }
}

// errors: {field: message}; a field without a slot of its own goes to the form's .form-error (or a notice).
export function showErrors(form, errors) {
  let first = null;
  for (const [field, message] of Object.entries(errors)) {
    const slot = form.querySelector(`.field-error[data-for="${field}"]`) || form.querySelector('.form-error');
    if (!slot) continue;
    slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
    slot.hidden = false;
    first ||= form.querySelector(`[name="${field}"]`);
  }
  first?.focus();
  return Object.keys(errors).length > 0;
}

// An ApiError as {field: message}; `rename` maps the server's field ("quota.vcpus") to the form's.
export function serverError(error, rename = (field) => field.split('.')[0]) {
  return { [rename(error.field || '') || '_form']: error.message };
}
