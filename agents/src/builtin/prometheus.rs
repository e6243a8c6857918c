//! `prometheus`: instant and range queries against the Prometheus HTTP API.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::params;
use crate::{Agent, Error, TaskContext, TaskOutput, TaskRequest};

/// Queries Prometheus and returns numbers that conditions and watches read.
///
/// Parameters:
/// - `query` (required): PromQL.
/// - `url`: the server's base URL; default the `PROMETHEUS_URL` environment
///   variable, then `http://127.0.0.1:9090`.
/// - `range`: make a range query over the last `range` (e.g. `"5m"`) with
///   `step` (default `15s`), reduced per series by `reduce`: `last` (default),
///   `avg`, `min` or `max`.
/// - `timeout`: per request (default 30s).
///
/// Output: `{"value": <first series' number or null>, "series": [{"metric":
/// {...}, "value": n}], "result_type": "vector"}`. An empty result gives
/// `"value": null`, which watches treat as missing data. Prometheus errors
/// (a bad query, say) surface verbatim as permanent failures; an unreachable
/// server or a 5xx is retryable.
#[derive(Debug, Clone)]
pub struct PrometheusAgent {
    client: reqwest::Client,
}

impl PrometheusAgent {
    /// An agent with its own connection pool.
    pub fn new() -> Self {
        Self { client: reqwest::Client::builder().build().unwrap_or_default() }
    }
}

impl Default for PrometheusAgent {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reduce {
    Last,
    Avg,
    Min,
    Max,
}

struct Query {
    base: String,
    query: String,
    range: Option<(Duration, Duration, Reduce)>,
    timeout: Duration,
}

fn parse(params: &Map<String, Value>) -> Result<Query, String> {
    let query = params::string(params, "query")?.trim().to_owned();
    if query.is_empty() {
        return Err("parameter `query` is empty; give a PromQL expression".to_owned());
    }
    let base = match params::optional_string(params, "url")? {
        Some(url) => url.to_owned(),
        None => std::env::var("PROMETHEUS_URL").unwrap_or_else(|_| "http://127.0.0.1:9090".to_owned()),
    };
    reqwest::Url::parse(&base).map_err(|error| format!("parameter `url`: `{base}` is not a URL ({error})"))?;
    let range = match params::optional_duration(params, "range")? {
        None => None,
        Some(range) => {
            let step = params::optional_duration(params, "step")?.unwrap_or(Duration::from_secs(15));
            if step.is_zero() {
                return Err("parameter `step` must be positive".to_owned());
            }
            let reduce = match params::optional_string(params, "reduce")?.unwrap_or("last") {
                "last" => Reduce::Last,
                "avg" => Reduce::Avg,
                "min" => Reduce::Min,
                "max" => Reduce::Max,
                other => return Err(format!("parameter `reduce`: `{other}` is not one of last, avg, min, max")),
            };
            Some((range, step, reduce))
        }
    };
    let timeout = params::optional_duration(params, "timeout")?.unwrap_or(Duration::from_secs(30));
    Ok(Query { base: base.trim_end_matches('/').to_owned(), query, range, timeout })
}

/// A sample value as Prometheus writes it: `[time, "number"]`.
fn sample_value(sample: &Value) -> Option<f64> {
    sample.get(1)?.as_str()?.parse::<f64>().ok()
}

fn reduce(values: &[f64], how: Reduce) -> Option<f64> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    match how {
        Reduce::Last => values.last().copied(),
        Reduce::Avg => (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64),
        Reduce::Min => finite.iter().copied().reduce(f64::min),
        Reduce::Max => finite.iter().copied().reduce(f64::max),
    }
}

fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

#[async_trait::async_trait]
impl Agent for PrometheusAgent {
    fn name(&self) -> &str {
        "prometheus"
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        parse(params).map(|_| ())
    }

    async fn run(&self, request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error> {
        let query = parse(&request.params).map_err(Error::Permanent)?;
        let builder = match query.range {
            None => self.client.get(format!("{}/api/v1/query", query.base)).query(&[("query", query.query.as_str())]),
            Some((range, step, _)) => {
                let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
                let start = end - range.as_secs_f64();
                self.client.get(format!("{}/api/v1/query_range", query.base)).query(&[
                    ("query", query.query.clone()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{}", step.as_secs_f64())),
                ])
            }
        };
        let response = tokio::select! {
            response = builder.timeout(query.timeout).send() => response.map_err(|error| Error::Retryable(format!("prometheus at {} is unreachable: {error}", query.base)))?,
            () = context.cancel.cancelled() => return Err(Error::Retryable("cancelled".to_owned())),
        };
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|error| Error::Retryable(format!("prometheus answered {status} with a body that is not JSON: {error}")))?;
        if body["status"] != "success" {
            // Prometheus's own words: errorType and error, verbatim.
            let kind = body["errorType"].as_str().unwrap_or("error");
            let message = body["error"].as_str().unwrap_or("no message");
            let text = format!("prometheus {kind}: {message}");
            return Err(if status.is_server_error() || kind == "timeout" || kind == "unavailable" {
                Error::Retryable(text)
            } else {
                Error::Permanent(text)
            });
        }
        let data = &body["data"];
        let result_type = data["resultType"].as_str().unwrap_or("").to_owned();
        let series: Vec<Value> = match result_type.as_str() {
            "vector" => data["result"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|item| json!({"metric": item["metric"], "value": sample_value(&item["value"]).map_or(Value::Null, number)}))
                        .collect()
                })
                .unwrap_or_default(),
            "matrix" => {
                let how = query.range.map_or(Reduce::Last, |(_, _, how)| how);
                data["result"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|item| {
                                let values: Vec<f64> = item["values"].as_array().map(|v| v.iter().filter_map(sample_value).collect()).unwrap_or_default();
                                json!({"metric": item["metric"], "value": reduce(&values, how).map_or(Value::Null, number), "samples": values.len()})
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
            "scalar" => vec![json!({"metric": {}, "value": sample_value(&data["result"]).map_or(Value::Null, number)})],
            other => {
                return Err(Error::Permanent(format!(
                    "prometheus returned a {other} result; phasegate reads vector, matrix and scalar results"
                )))
            }
        };
        let value = series.first().map_or(Value::Null, |s| s["value"].clone());
        Ok(TaskOutput(json!({"value": value, "series": series, "result_type": result_type})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions() {
        assert_eq!(reduce(&[1.0, 5.0, 3.0], Reduce::Last), Some(3.0));
        assert_eq!(reduce(&[1.0, 5.0, 3.0], Reduce::Avg), Some(3.0));
        assert_eq!(reduce(&[1.0, 5.0, 3.0], Reduce::Min), Some(1.0));
        assert_eq!(reduce(&[1.0, 5.0, 3.0], Reduce::Max), Some(5.0));
        assert_eq!(reduce(&[], Reduce::Avg), None);
        assert_eq!(sample_value(&json!([1700000000.0, "0.25"])), Some(0.25));
    }
}
