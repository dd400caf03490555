// Builds the form from CONFIG (the running config with every key's effective value, inlined by the board) while
// the page is parsed, so it is there when the page has loaded.
const PIN_MODES = ['input', 'input-pullup', 'input-pulldown', 'output', 'output-pwm', 'flashlight-default',
  'flashlight-pwm', 'flashlight-smartled', 'flashlight-digital', 'trigger-cycle-start'];
function getPath(obj, path) {
  return path.replace(/\[(\d+)\]/g, '.$1').split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}
function setPath(obj, path, value) {
  const parts = path.replace(/\[(\d+)\]/g, '.$1').split('.');
  let o = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    const key = parts[i], nextIsIndex = /^\d+$/.test(parts[i + 1]);
    if (o[key] === undefined) o[key] = nextIsIndex ? [] : {};
    o = o[key];
  }
  o[parts[parts.length - 1]] = value;
}
function textOf(path) {
  const v = getPath(CONFIG, path);
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}
function row(path, label, input) {
  const div = document.createElement('div');
  div.className = 'field';
  const id = path.replace(/[.[\]]/g, '_');
  const l = document.createElement('label');
  l.htmlFor = id;
  l.textContent = label;
  input.id = id;
  input.name = path;
  const err = document.createElement('span');
  err.className = 'error';
  err.dataset.errorFor = path;
  div.append(l, input, err);
  return div;
}
// kind: 'text', 'number' or 'checkbox'; the input's name is its config path.
function field(path, label, kind) {
  const input = document.createElement('input');
  input.type = kind;
  if (kind === 'checkbox') {
    input.dataset.kind = 'bool';
    input.checked = getPath(CONFIG, path) === true;
  } else {
    input.step = 'any';
    input.dataset.kind = kind === 'number' ? 'number' : 'string';
    input.value = textOf(path);
  }
  return row(path, label, input);
}
function select(path, label, options) {
  const s = document.createElement('select');
  s.dataset.kind = typeof getPath(CONFIG, path) === 'number' ? 'number' : 'string';
  const current = textOf(path);
  for (const [value, text] of options) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    o.selected = value === current;
    s.append(o);
  }
  return row(path, label, s);
}
function fieldset(id, legend, rows) {
  const f = document.createElement('fieldset');
  f.id = id;
  const l = document.createElement('legend');
  l.textContent = legend;
  f.append(l, ...rows);
  return f;
}
const form = document.getElementById('config');
const seqs = (CONFIG.numbersequences && CONFIG.numbersequences.sequence) || [];
const posts = (CONFIG.postprocessing && CONFIG.postprocessing.sequence) || [];
const pins = (CONFIG.gpio && CONFIG.gpio.gpiopin) || [];
form.replaceChildren(
  fieldset('operationmode', 'Operation Mode', [
    select('operationmode.opmode', 'Mode', [['-1', 'Setup'], ['0', 'Manual'], ['1', 'Automatic']]),
    field('operationmode.automaticprocessinterval', 'Interval (min)', 'number')]),
  fieldset('mqtt', 'MQTT', [
    field('mqtt.enabled', 'Enabled', 'checkbox'),
    field('mqtt.uri', 'URI', 'text'),
    field('mqtt.maintopic', 'Main Topic', 'text'),
    field('mqtt.clientid', 'Client ID', 'text'),
    select('mqtt.authmode', 'Authentication', [['0', 'None'], ['1', 'Basic'], ['2', 'TLS']]),
    field('mqtt.username', 'Username', 'text'),
    field('mqtt.password', 'Password', 'text'),
    select('mqtt.processdatanotation', 'Process Data Notation', [['0', 'JSON'], ['1', 'Topics'], ['2', 'JSON + Topics']]),
    field('mqtt.retainprocessdata', 'Retain Process Data', 'checkbox'),
    field('mqtt.homeassistant.discoveryenabled', 'Home Assistant Discovery', 'checkbox'),
    field('mqtt.homeassistant.discoveryprefix', 'Discovery Prefix', 'text'),
    field('mqtt.homeassistant.metertype', 'Meter Type (0..10)', 'number')]),
  fieldset('numbersequences', 'Number Sequences', seqs.flatMap((_, i) => [
    field(`numbersequences.sequence[${i}].sequenceid`, 'Sequence ID', 'number'),
    field(`numbersequences.sequence[${i}].sequencename`, 'Sequence Name', 'text')])),
  fieldset('postprocessing', 'Post-Processing', posts.flatMap((_, i) => {
    const p = `postprocessing.sequence[${i}]`;
    return [
      field(`${p}.sequenceid`, 'Sequence ID', 'number'),
      field(`${p}.decimalshift`, 'Decimal Shift', 'number'),
      field(`${p}.extendedresolution`, 'Extended Resolution', 'checkbox'),
      select(`${p}.maxratechecktype`, 'Max Rate Check', [['0', 'Off'], ['1', 'Rate per minute'], ['2', 'Rate per interval']]),
      field(`${p}.maxrate`, 'Max Rate', 'number'),
      field(`${p}.allownegativerate`, 'Allow Negative Rate', 'checkbox'),
      field(`${p}.usefallbackvalue`, 'Use Fallback Value', 'checkbox')];
  })),
  fieldset('gpio', 'GPIO', pins.flatMap((_, i) => {
    const p = `gpio.gpiopin[${i}]`;
    return [
      field(`${p}.gpionumber`, 'GPIO Number', 'number'),
      field(`${p}.pinenabled`, 'Enabled', 'checkbox'),
      field(`${p}.pinname`, 'Name', 'text'),
      select(`${p}.pinmode`, 'Mode', PIN_MODES.map((m) => [m, m])),
      field(`${p}.pwmfrequency`, 'PWM Frequency (Hz)', 'number'),
      field(`${p}.exposetomqtt`, 'Expose to MQTT', 'checkbox')];
  })));
const save = document.createElement('button');
save.type = 'submit';
save.id = 'save';
save.textContent = 'Save';
const statusLine = document.createElement('span');
statusLine.id = 'status';
form.append(save, ' ', statusLine);
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  // Start from the stored document so keys the form does not show are kept (arrays are replaced whole).
  const patch = await (await fetch('/api/config')).json();
  for (const el of form.querySelectorAll('[name]')) {
    let v = el.value;
    if (el.dataset.kind === 'bool') v = el.checked;
    else if (el.dataset.kind === 'number') {
      if (v.trim() === '') continue;
      v = Number(v);
    }
    setPath(patch, el.name, v);
  }
  for (const e of document.querySelectorAll('.error')) e.textContent = '';
  const resp = await fetch('/api/config', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(patch)});
  const body = await resp.json();
  if (resp.ok) { statusLine.textContent = 'Saved.'; statusLine.className = 'ok'; return; }
  statusLine.textContent = 'Not saved: ' + body.path + ': ' + body.error; statusLine.className = 'bad';
  for (const err of (body.errors || [{path: body.path, message: body.error}])) {
    const target = document.querySelector('[data-error-for="' + CSS.escape(err.path) + '"]');
    if (target) target.textContent = err.message;
  }
});
