//! The web interface page (`GET /`): `Settings > Configuration` as one form, rendered from the running config.
//! Plain HTML + a few lines of vanilla JavaScript (no framework, nothing from the internet): the form posts the
//! changed document to `/api/config` and shows a refused key's message next to its field.

use alloc::format;
use alloc::string::{String, ToString};

use serde_json::Value;

use crate::config::{get_path, Config, RateCheck};
use crate::gpio::PinMode;

/// HTML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn text_of(doc: &Value, path: &str) -> String {
    match get_path(doc, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// One labelled field; `kind` is `text`, `number` or `checkbox`; the input's name is its config path.
fn field(doc: &Value, path: &str, label: &str, kind: &str) -> String {
    let id = path.replace(['.', '[', ']'], "_");
    let input = if kind == "checkbox" {
        let checked = if get_path(doc, path) == Some(&Value::Bool(true)) {
            " checked"
        } else {
            ""
        };
        format!(
            "<input type=\"checkbox\" id=\"{id}\" name=\"{p}\" data-kind=\"bool\"{checked}>",
            p = escape(path)
        )
    } else {
        let value = escape(&text_of(doc, path));
        let data = if kind == "number" { "number" } else { "string" };
        format!("<input type=\"{kind}\" step=\"any\" id=\"{id}\" name=\"{p}\" data-kind=\"{data}\" value=\"{value}\">", p = escape(path))
    };
    format!(
        "<div class=\"field\"><label for=\"{id}\">{}</label>{input}<span class=\"error\" data-error-for=\"{}\"></span></div>\n",
        escape(label),
        escape(path)
    )
}

fn select(doc: &Value, path: &str, label: &str, options: &[(&str, &str)]) -> String {
    let id = path.replace(['.', '[', ']'], "_");
    let current = text_of(doc, path);
    let numeric = matches!(get_path(doc, path), Some(Value::Number(_)));
    let opts: String = options
        .iter()
        .map(|(v, l)| {
            let sel = if *v == current { " selected" } else { "" };
            format!(
                "<option value=\"{}\"{sel}>{}</option>",
                escape(v),
                escape(l)
            )
        })
        .collect();
    let kind = if numeric { "number" } else { "string" };
    format!(
        "<div class=\"field\"><label for=\"{id}\">{}</label><select id=\"{id}\" name=\"{}\" data-kind=\"{kind}\">{opts}</select><span class=\"error\" data-error-for=\"{}\"></span></div>\n",
        escape(label),
        escape(path),
        escape(path)
    )
}

const SCRIPT: &str = r#"
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
document.getElementById('config').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  // Start from the stored document so keys the form does not show are kept (arrays are replaced whole).
  const patch = await (await fetch('/api/config')).json();
  for (const el of ev.target.querySelectorAll('[name]')) {
    let v = el.value;
    if (el.dataset.kind === 'bool') v = el.checked;
    else if (el.dataset.kind === 'number') {
      if (v.trim() === '') continue;
      v = Number(v);
    }
    setPath(patch, el.name, v);
  }
  for (const e of document.querySelectorAll('.error')) e.textContent = '';
  const status = document.getElementById('status');
  const resp = await fetch('/api/config', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(patch)});
  const body = await resp.json();
  if (resp.ok) { status.textContent = 'Saved.'; status.className = 'ok'; return; }
  status.textContent = 'Not saved: ' + body.path + ': ' + body.error; status.className = 'bad';
  for (const err of (body.errors || [{path: body.path, message: body.error}])) {
    const target = document.querySelector('[data-error-for="' + CSS.escape(err.path) + '"]');
    if (target) target.textContent = err.message;
  }
});
"#;

/// The document with the effective value of every post-processing key filled in: array entries replace their
/// defaults whole, so a key absent from an entry would otherwise show (and save) as empty / unchecked.
fn with_effective_values(doc: &Value, config: &Config) -> Value {
    let mut doc = doc.clone();
    if let Some(entries) = doc
        .pointer_mut("/postprocessing/sequence")
        .and_then(Value::as_array_mut)
    {
        for entry in entries.iter_mut() {
            let id = entry.get("sequenceid").and_then(Value::as_u64);
            let Some(seq) = config
                .sequences
                .iter()
                .find(|s| Some(u64::from(s.id)) == id)
            else {
                continue;
            };
            let p = &seq.post;
            let check = match p.max_rate_check {
                RateCheck::Off => 0,
                RateCheck::PerMinute => 1,
                RateCheck::PerInterval => 2,
            };
            let effective = serde_json::json!({
                "decimalshift": p.decimal_shift, "analogdigitsyncvalue": p.analog_digit_sync_value,
                "extendedresolution": p.extended_resolution, "ignoreleadingnan": p.ignore_leading_nan,
                "checkdigitincreaseconsistency": p.check_digit_increase_consistency, "maxratechecktype": check,
                "maxrate": p.max_rate, "allownegativerate": p.allow_negative_rate,
                "usefallbackvalue": p.use_fallback_value, "fallbackvalueagestartup": p.fallback_value_age_startup,
            });
            if let (Some(entry), Some(effective)) = (entry.as_object_mut(), effective.as_object()) {
                for (k, v) in effective {
                    entry.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    doc
}

/// The configuration page for the running config document.
pub fn page(doc: &Value, config: &Config) -> String {
    let doc = &with_effective_values(doc, config);
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>meterrig — Configuration</title>\n\
<style>body{font-family:sans-serif;max-width:52em;margin:1em auto}fieldset{margin:1em 0}.field{margin:.3em 0}\
label{display:inline-block;width:16em}.error{color:#b00;margin-left:.5em}.ok{color:#070}.bad{color:#b00}</style>\n\
</head><body>\n<nav>Settings &gt; Configuration</nav>\n<h1>Configuration</h1>\n<form id=\"config\">\n",
    );
    html.push_str("<fieldset id=\"operationmode\"><legend>Operation Mode</legend>\n");
    html.push_str(&select(
        doc,
        "operationmode.opmode",
        "Mode",
        &[("-1", "Setup"), ("0", "Manual"), ("1", "Automatic")],
    ));
    html.push_str(&field(
        doc,
        "operationmode.automaticprocessinterval",
        "Interval (min)",
        "number",
    ));
    html.push_str("</fieldset>\n<fieldset id=\"mqtt\"><legend>MQTT</legend>\n");
    html.push_str(&field(doc, "mqtt.enabled", "Enabled", "checkbox"));
    html.push_str(&field(doc, "mqtt.uri", "URI", "text"));
    html.push_str(&field(doc, "mqtt.maintopic", "Main Topic", "text"));
    html.push_str(&field(doc, "mqtt.clientid", "Client ID", "text"));
    html.push_str(&select(
        doc,
        "mqtt.authmode",
        "Authentication",
        &[("0", "None"), ("1", "Basic"), ("2", "TLS")],
    ));
    html.push_str(&field(doc, "mqtt.username", "Username", "text"));
    html.push_str(&field(doc, "mqtt.password", "Password", "text"));
    html.push_str(&select(
        doc,
        "mqtt.processdatanotation",
        "Process Data Notation",
        &[("0", "JSON"), ("1", "Topics"), ("2", "JSON + Topics")],
    ));
    html.push_str(&field(
        doc,
        "mqtt.retainprocessdata",
        "Retain Process Data",
        "checkbox",
    ));
    html.push_str(&field(
        doc,
        "mqtt.homeassistant.discoveryenabled",
        "Home Assistant Discovery",
        "checkbox",
    ));
    html.push_str(&field(
        doc,
        "mqtt.homeassistant.discoveryprefix",
        "Discovery Prefix",
        "text",
    ));
    html.push_str(&field(
        doc,
        "mqtt.homeassistant.metertype",
        "Meter Type (0..16)",
        "number",
    ));
    html.push_str(
        "</fieldset>\n<fieldset id=\"numbersequences\"><legend>Number Sequences</legend>\n",
    );
    for i in 0..config.sequences.len() {
        html.push_str(&field(
            doc,
            &format!("numbersequences.sequence[{i}].sequenceid"),
            "Sequence ID",
            "number",
        ));
        html.push_str(&field(
            doc,
            &format!("numbersequences.sequence[{i}].sequencename"),
            "Sequence Name",
            "text",
        ));
    }
    html.push_str(
        "</fieldset>\n<fieldset id=\"postprocessing\"><legend>Post-Processing</legend>\n",
    );
    let post_count = get_path(doc, "postprocessing.sequence")
        .and_then(Value::as_array)
        .map_or(0, |a| a.len());
    for i in 0..post_count {
        let p = format!("postprocessing.sequence[{i}]");
        html.push_str(&field(
            doc,
            &format!("{p}.sequenceid"),
            "Sequence ID",
            "number",
        ));
        html.push_str(&field(
            doc,
            &format!("{p}.decimalshift"),
            "Decimal Shift",
            "number",
        ));
        html.push_str(&field(
            doc,
            &format!("{p}.extendedresolution"),
            "Extended Resolution",
            "checkbox",
        ));
        html.push_str(&select(
            doc,
            &format!("{p}.maxratechecktype"),
            "Max Rate Check",
            &[
                ("0", "Off"),
                ("1", "Rate per minute"),
                ("2", "Rate per interval"),
            ],
        ));
        html.push_str(&field(doc, &format!("{p}.maxrate"), "Max Rate", "number"));
        html.push_str(&field(
            doc,
            &format!("{p}.allownegativerate"),
            "Allow Negative Rate",
            "checkbox",
        ));
        html.push_str(&field(
            doc,
            &format!("{p}.usefallbackvalue"),
            "Use Fallback Value",
            "checkbox",
        ));
    }
    html.push_str("</fieldset>\n<fieldset id=\"gpio\"><legend>GPIO</legend>\n");
    let modes: alloc::vec::Vec<(&str, &str)> = PinMode::NAMES.iter().map(|n| (*n, *n)).collect();
    for i in 0..config.gpio.len() {
        let p = format!("gpio.gpiopin[{i}]");
        html.push_str(&field(
            doc,
            &format!("{p}.gpionumber"),
            "GPIO Number",
            "number",
        ));
        html.push_str(&field(
            doc,
            &format!("{p}.pinenabled"),
            "Enabled",
            "checkbox",
        ));
        html.push_str(&field(doc, &format!("{p}.pinname"), "Name", "text"));
        html.push_str(&select(doc, &format!("{p}.pinmode"), "Mode", &modes));
        html.push_str(&field(
            doc,
            &format!("{p}.pwmfrequency"),
            "PWM Frequency (Hz)",
            "number",
        ));
        html.push_str(&field(
            doc,
            &format!("{p}.exposetomqtt"),
            "Expose to MQTT",
            "checkbox",
        ));
    }
    html.push_str("</fieldset>\n<button type=\"submit\" id=\"save\">Save</button> <span id=\"status\"></span>\n</form>\n<script>");
    html.push_str(SCRIPT);
    html.push_str("</script>\n</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn page_has_sections_and_current_values() {
        let (doc, config) =
            Config::from_partial(&json!({"mqtt": {"maintopic": "water/<b1>"}})).unwrap();
        let html = page(&crate::config::redacted(&doc), &config);
        for section in [
            "operationmode",
            "mqtt",
            "numbersequences",
            "postprocessing",
            "gpio",
        ] {
            assert!(
                html.contains(&format!("<fieldset id=\"{section}\">")),
                "{section}"
            );
        }
        assert!(
            html.contains("value=\"water/&lt;b1&gt;\""),
            "values are escaped"
        );
        assert!(html.contains("name=\"gpio.gpiopin[2].pinmode\""));
        assert!(html.contains("<option value=\"flashlight-default\" selected>"));
        assert!(html.contains("data-error-for=\"mqtt.maintopic\""));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing loaded from the internet"
        );
    }

    #[test]
    fn absent_keys_of_array_entries_show_their_effective_value() {
        // usefallbackvalue and extendedresolution default to true; the entry does not name them.
        let (doc, config) =
            Config::from_partial(&json!({"postprocessing": {"sequence": [{"sequenceid": 0}]}}))
                .unwrap();
        let html = page(&doc, &config);
        assert!(html.contains(
            "name=\"postprocessing.sequence[0].usefallbackvalue\" data-kind=\"bool\" checked"
        ));
        assert!(html.contains(
            "name=\"postprocessing.sequence[0].extendedresolution\" data-kind=\"bool\" checked"
        ));
        assert!(html.contains(
            "name=\"postprocessing.sequence[0].maxrate\" data-kind=\"number\" value=\"0.15\""
        ));
    }
}
