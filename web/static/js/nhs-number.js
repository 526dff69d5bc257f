// The NHS number rules of repository/patients.py, checked in the browser as the number is
// typed. The server checks again: this only saves the photographer a round trip.

const TEMPORARY_ID = /^TMP-[A-Z0-9]{3,5}-[A-Z0-9]{1,20}$/;

export function modulus11Ok(digits) {
  let sum = 0;
  for (let i = 0; i < 9; i += 1) sum += Number(digits[i]) * (10 - i);
  let check = 11 - (sum % 11);
  if (check === 11) check = 0;
  return check !== 10 && check === Number(digits[9]);
}

// Returns {ok, id, complete, message}: `complete` is false while the number may still be
// being typed (fewer than 10 digits), so the page can wait before showing an error.
export function checkNhsNumber(raw, { allowTestNumbers = false } = {}) {
  const value = (raw || '').trim().toUpperCase();
  if (!value) return { ok: false, complete: false, message: "Enter the patient's NHS number" };
  if (value.startsWith('TMP-')) {
    const ok = TEMPORARY_ID.test(value);
    return { ok, id: value, complete: ok, message: ok ? '' : 'Temporary identifier must look like TMP-<ODS code>-<reference>' };
  }
  const digits = value.replace(/[\s-]/g, '');
  if (!/^\d*$/.test(digits)) return { ok: false, complete: true, message: 'NHS number must be 10 digits' };
  if (digits.length < 10) return { ok: false, complete: false, message: 'NHS number must be 10 digits' };
  if (digits.length > 10) return { ok: false, complete: true, message: 'NHS number must be 10 digits' };
  if (new Set(digits).size === 1) return { ok: false, complete: true, message: 'NHS number of one repeated digit is not issued' };
  if (!modulus11Ok(digits)) return { ok: false, complete: true, message: 'NHS number fails the Modulus 11 check digit' };
  if (digits.startsWith('999') && !allowTestNumbers) {
    return { ok: false, complete: true, message: 'NHS number is in the 999 test range, refused here' };
  }
  return { ok: true, id: digits, complete: true, message: '' };
}

export function displayNhsNumber(id) {
  return /^\d{10}$/.test(id) ? `${id.slice(0, 3)} ${id.slice(3, 6)} ${id.slice(6)}` : id;
}
