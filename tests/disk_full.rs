//! A full disk mid-run: training fails with a clear message and the previous epoch's
//! checkpoint stays resumable. Needs root to mount a small tmpfs; skips otherwise.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_ok, json, patron, stderr};

fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn remount(dir: &Path, size: &str) {
    let ok = Command::new("mount")
        .args(["-o", &format!("remount,size={size}")])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "remount {size}");
}

/// Unmounts when the test ends, pass or fail.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn disk_full_fails_cleanly_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    // One epoch checkpoint of the bank model (410 numeric inputs) and the run files fit in
    // 2.4 MB, the second checkpoint does not.
    if !mount_tmpfs(&disk, "2400k") {
        eprintln!("skipping disk-full test: cannot mount a tmpfs (needs root)");
        return;
    }
    let _guard = Mounted(&disk);
    let run = disk.join("run");
    let o = patron(&[
        "train",
        "--config",
        "configs/bank_propensity.toml",
        "--backend",
        "ndarray",
        "--quiet",
        "--output-dir",
        run.to_str().unwrap(),
        "--set",
        "train.epochs=4",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["status"], "training");
    let pointer = json(&run.join("train_state/current.json"));
    assert_eq!(pointer["epoch_dir"], "epoch-0001");

    // With room again, the run resumes from that checkpoint and finishes.
    remount(&disk, "64m");
    let o = patron(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--backend",
        "ndarray",
        "--quiet",
    ]);
    assert_ok(&o);
    assert_eq!(json(&run.join("manifest.json"))["status"], "complete");
    assert_eq!(json(&run.join("manifest.json"))["epochs_run"], 4);
}
