//! Memory that does not grow with history: a big container log is served by streaming.

use std::time::Duration;

use boxd_tests::{require_root, TestDaemon};
use http_body_util::BodyExt;
use serde_json::json;

/// Lines of 1000 bytes (999 `a` and `\n`), then five short numbered ones.
const LINES: u64 = 199_995;
const LINE_LEN: u64 = 1000;

#[tokio::test]
async fn root_logs_of_a_200mb_container_are_streamed_in_bounded_memory() {
    require_root!();
    let mut d = TestDaemon::prepare();
    // No rotation: the whole 200 MB stays in the log to be read back.
    d.extra_args = vec!["--log-max-bytes".into(), "0".into()];
    d.spawn().await;
    d.import_busybox().await;
    let script = format!(
        "yes {} | head -n {LINES}; for i in 1 2 3 4 5; do echo last-$i; done",
        "a".repeat(LINE_LEN as usize - 1)
    );
    let id = d
        .run(json!({"image": "busybox", "cmd": ["sh", "-c", script]}))
        .await;
    let exited = d.wait_state(&id, "exited", Duration::from_secs(600)).await;
    assert_eq!(exited["exit_code"], 0, "{exited}");
    let tail_lines: String = (1..=5).map(|i| format!("last-{i}\n")).collect();
    let want_bytes = LINES * LINE_LEN + tail_lines.len() as u64;

    let before = d.daemon_rss();
    let mut peak = before;
    let mut body = d.stream_body(&format!("/v1/containers/{id}/logs")).await;
    let (mut bytes, mut newlines, mut others, mut since_sample) = (0u64, 0u64, 0u64, 0u64);
    let mut last = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(60), body.frame())
        .await
        .expect("the logs keep coming")
    {
        let Ok(data) = frame.expect("the body reads").into_data() else {
            continue;
        };
        bytes += data.len() as u64;
        newlines += data.iter().filter(|b| **b == b'\n').count() as u64;
        others += data.iter().filter(|b| **b != b'a' && **b != b'\n').count() as u64;
        last.extend_from_slice(&data);
        let keep = last.len().saturating_sub(64);
        last.drain(..keep);
        since_sample += data.len() as u64;
        if since_sample >= 1 << 20 {
            since_sample = 0;
            peak = peak.max(d.daemon_rss());
        }
    }
    peak = peak.max(d.daemon_rss());
    assert_eq!(bytes, want_bytes, "every byte of the log, once");
    assert_eq!(newlines, LINES + 5);
    // `l`, `s`, `t`, `-` and the digit of `last-1\n` ... `last-5\n` are the only
    // bytes besides `a` and `\n`.
    assert_eq!(others, 5 * 5);
    assert!(String::from_utf8_lossy(&last).ends_with(&tail_lines));
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 20 << 20,
        "the daemon grew by {} MiB while serving the log",
        growth >> 20
    );

    let (status, tail) = d
        .get_text(&format!("/v1/containers/{id}/logs?tail=5"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(tail, tail_lines);
    let (_, tail) = d
        .get_text(&format!("/v1/containers/{id}/logs?tail=6"))
        .await;
    assert_eq!(tail, format!("{}\n{tail_lines}", "a".repeat(999)));
    d.remove_container(&id).await;
}
