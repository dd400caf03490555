//! The REST API shared by every board's HTTP server: config, status, and the reference `/mqtt` handler.

use alloc::format;
use alloc::string::{String, ToString};

use serde_json::{json, Value};

use crate::config::ConfigError;
use crate::engine::{Engine, HttpRequest, HttpResponse};

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

/// Reference `/mqtt` handler usage text (shown without a query).
const MQTT_USAGE: &str =
    "Handler usage:<br>1. Schedule publication of Home Assistant discovery MQTT topics:<br> - \
'/mqtt?task=publish_ha_discovery'<br>2. Schedule publication of device info MQTT topics:<br> - \
'/mqtt?task=publish_device_info'<br>3. Print API name and version<br> - '/mqtt?task=api_name'";

fn reply(status: u16, content_type: &'static str, body: impl Into<String>) -> HttpResponse {
    HttpResponse::new(status, content_type, body.into())
}

/// `{"error", "path", "errors"}` for a refused configuration.
pub fn config_error_body(e: &ConfigError) -> String {
    let errors: alloc::vec::Vec<Value> = e
        .errors
        .iter()
        .map(|f| json!({"path": f.path, "message": f.message}))
        .collect();
    let first = e
        .errors
        .first()
        .map_or(String::new(), |f| f.message.clone());
    json!({"error": first, "path": e.path(), "errors": errors}).to_string()
}

/// The value of `key` in a query string (`a=1&task=x`).
fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

impl Engine {
    pub(crate) fn on_http(&mut self, req: &HttpRequest) -> HttpResponse {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/") => HttpResponse {
                status: 200,
                content_type: "text/html; charset=utf-8",
                head: crate::web::PAGE_HEAD,
                body: crate::web::page_data(&self.config_redacted(), self.config()),
                tail: crate::web::PAGE_TAIL,
            },
            ("GET", "/mqtt") => self.rest_mqtt(&req.query),
            ("GET", "/api/config") => reply(200, JSON, self.config_redacted().to_string()),
            ("POST", "/api/config") => self.rest_post_config(&req.body),
            ("GET", "/api/status") => reply(200, JSON, self.status_json().to_string()),
            (_, "/mqtt" | "/api/config" | "/api/status") => reply(
                405,
                JSON,
                json!({"error": format!("method {} not allowed", req.method)}).to_string(),
            ),
            _ => reply(
                404,
                JSON,
                json!({"error": format!("no route {} {}", req.method, req.path)}).to_string(),
            ),
        }
    }

    /// The reference's `/mqtt` handler (`server_mqtt.cpp` 262-310), to its buffer sizes: a query of 64 bytes or
    /// more reads as none (the usage page); an unknown task (its 30-character buffer included: no task name is that
    /// long) is answered 200 with its error text.
    fn rest_mqtt(&mut self, query: &str) -> HttpResponse {
        if query.is_empty() || query.len() >= 64 {
            return reply(200, "text/html", MQTT_USAGE);
        }
        let task = query_value(query, "task").unwrap_or("");
        match task {
            "api_name" => reply(200, TEXT, "mqtt:v2"),
            "publish_ha_discovery" => {
                self.schedule_discovery();
                reply(200, TEXT, "001: Publication of HA discovery topics scheduled during state 'Publish to MQTT'")
            }
            "publish_device_info" => {
                self.schedule_device_info();
                reply(200, TEXT, "002: Publication of device info topics scheduled during state 'Publish to MQTT'")
            }
            _ => reply(200, TEXT, "E90: Task not found"),
        }
    }

    fn rest_post_config(&mut self, body: &[u8]) -> HttpResponse {
        if body.len() > 64 * 1024 {
            return reply(
                413,
                JSON,
                json!({"error": "body larger than 64 KiB", "path": "$"}).to_string(),
            );
        }
        let patch = match crate::json::parse_unique(body) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("body is not valid JSON: {}", e.message);
                return reply(400, JSON, json!({"error": msg, "path": e.path}).to_string());
            }
        };
        match self.merge_config(patch) {
            Ok(()) => reply(
                200,
                JSON,
                // Written around the document's text: `json!` would copy the parsed document once more.
                format!(
                    "{{\"status\":\"saved\",\"config\":{}}}",
                    self.config_redacted()
                ),
            ),
            Err(e) => {
                self.log(crate::engine::Level::Warn, format!("config refused: {e}"));
                reply(400, JSON, config_error_body(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values() {
        assert_eq!(query_value("task=api_name", "task"), Some("api_name"));
        assert_eq!(query_value("a=1&task=x", "task"), Some("x"));
        assert_eq!(query_value("a=1", "task"), None);
    }

    #[test]
    fn error_body_names_path() {
        let e = ConfigError {
            errors: alloc::vec![crate::config::FieldError {
                path: "mqtt.uri".to_string(),
                message: "bad".to_string()
            }],
        };
        let v: Value = serde_json::from_str(&config_error_body(&e)).unwrap();
        assert_eq!(v["path"], "mqtt.uri");
        assert_eq!(v["error"], "bad");
    }
}
