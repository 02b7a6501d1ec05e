//! `run.json` and `baseline.json`: how a run folder was made, written when it is created and read back by
//! `prnn eval`, `prnn train --resume`, `prnn recommend` and `prnn run`.

use std::path::{Path, PathBuf};

use crate::config::{StepChoice, BASELINE_NAMES};
use crate::diagnostic::Source;

use super::file::{read_text, write_text};
use super::{FileError, RunError, BASELINE_FILE, CONFIG_FILE, RECORD_FILE, SPEC_FILE};

/// The run folder's record of how it was made (`run.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub prnn_version: String,
    pub torch_version: Option<String>,
    pub command_line: Vec<String>,
    /// Where the spec and config were read from, as given.
    pub spec_path: PathBuf,
    pub config_path: PathBuf,
    /// The folder relative paths in `config.toml` resolve against (absolute).
    pub config_dir: PathBuf,
    /// BLAKE3 of `spec.prnn`, of `config.toml`, and of the resolved model as JSON.
    pub spec_hash: String,
    pub config_hash: String,
    pub model_hash: String,
    pub overrides: Vec<String>,
    pub max_batches: Option<u64>,
    pub device: String,
    /// The training step used: `fused` or `autograd` (empty in records older than the choice).
    #[serde(default)]
    pub step: String,
    pub parameters: i64,
    /// Trained and evaluated on the validation split (`--validation`) instead of train and test.
    #[serde(default)]
    pub validation: bool,
    /// The model after defaults and overrides: what actually trains.
    pub model: serde_json::Value,
    /// BLAKE3 of the record without this field, so that an edit is found rather than trusted (records of
    /// earlier prnn versions have none and are read unverified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl RunRecord {
    /// The checksum of the record's fields other than `checksum`.
    fn sum(&self) -> String {
        let unsealed = RunRecord { checksum: None, ..self.clone() };
        super::hash(&serde_json::to_string(&unsealed).expect("records serialise"))
    }

    /// Whether the record is as prnn wrote it: its checksum matches, or it predates checksums.
    fn intact(&self) -> bool {
        self.checksum.as_ref().is_none_or(|sum| *sum == self.sum())
    }

    /// The step the run trained with, for a resume to keep it; None for records older than the choice.
    pub fn step_choice(&self) -> Option<StepChoice> {
        match self.step.as_str() {
            "fused" => Some(StepChoice::Fused),
            "autograd" => Some(StepChoice::Autograd),
            _ => None,
        }
    }
}

/// The record of a baseline's run folder, beside `config.toml`, `eval.json` and `ranks.tsv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BaselineRecord {
    pub prnn_version: String,
    pub command_line: Vec<String>,
    pub baseline: String,
    pub settings: serde_json::Value,
    pub config_path: PathBuf,
    pub config_dir: PathBuf,
    pub config_hash: String,
    pub validation: bool,
    /// Seconds spent fitting (building similarities or indices).
    pub fit_seconds: f64,
}

/// A trained run's folder as read back: its record and the spec and config it keeps.
#[derive(Debug, Clone)]
pub struct RunFolder {
    pub record: RunRecord,
    pub spec: Source,
    pub config_text: String,
}

/// A baseline's folder as read back.
#[derive(Debug, Clone)]
pub struct BaselineFolder {
    pub record: BaselineRecord,
    /// Its `config.toml`, named by its path in the folder (for diagnostics).
    pub config: Source,
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, RunError> {
    serde_json::from_str(text).map_err(|source| RunError::Damaged { path: path.to_path_buf(), source })
}

/// Reads a trained run's record and the spec and config it keeps.
pub fn read_run(dir: &Path) -> Result<RunFolder, RunError> {
    let record_path = dir.join(RECORD_FILE);
    let record_text = read_text(&record_path, "run record").map_err(|source| {
        if dir.is_dir() {
            RunError::File(source)
        } else {
            RunError::NotARunFolder { dir: dir.to_path_buf(), source }
        }
    })?;
    let record: RunRecord = parse(&record_path, &record_text)?;
    if !record.intact() {
        return Err(RunError::Altered { path: record_path });
    }
    let spec_path = dir.join(SPEC_FILE);
    let spec = Source::new(spec_path.display().to_string(), read_text(&spec_path, "spec")?);
    let config_text = read_text(&dir.join(CONFIG_FILE), "run config")?;
    Ok(RunFolder { record, spec, config_text })
}

/// Writes a new trained run's spec, config and record.
pub fn write_run(dir: &Path, spec: &str, config: &str, record: &RunRecord) -> Result<(), FileError> {
    let sealed = RunRecord { checksum: Some(record.sum()), ..record.clone() };
    let record = serde_json::to_string_pretty(&sealed).expect("records serialise") + "\n";
    for (name, text) in [(SPEC_FILE, spec), (CONFIG_FILE, config), (RECORD_FILE, record.as_str())] {
        write_text(&dir.join(name), "the run record", text)?;
    }
    Ok(())
}

/// Reads a baseline's record and config; the record must name a baseline prnn has.
pub fn read_baseline(dir: &Path) -> Result<BaselineFolder, RunError> {
    let record_path = dir.join(BASELINE_FILE);
    let record: BaselineRecord = parse(&record_path, &read_text(&record_path, "baseline record")?)?;
    if !BASELINE_NAMES.contains(&record.baseline.as_str()) {
        return Err(RunError::UnknownBaseline { path: record_path, name: record.baseline });
    }
    let config_path = dir.join(CONFIG_FILE);
    let config = Source::new(config_path.display().to_string(), read_text(&config_path, "run config")?);
    Ok(BaselineFolder { record, config })
}

/// The seconds a baseline took to fit, as its record says; None when the record is missing or lacks them.
pub fn read_fit_seconds(dir: &Path) -> Option<f64> {
    // Only this field is read, so a record written by another version still counts its time.
    let text = std::fs::read_to_string(dir.join(BASELINE_FILE)).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["fit_seconds"].as_f64()
}

/// Writes a new baseline folder's config and record.
pub fn write_baseline(dir: &Path, config: &str, record: &BaselineRecord) -> Result<(), FileError> {
    write_text(&dir.join(CONFIG_FILE), "", config)?;
    write_text(&dir.join(BASELINE_FILE), "", &(serde_json::to_string_pretty(record).expect("records serialise") + "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        RunRecord {
            prnn_version: "0.1.0".into(),
            torch_version: Some("2.11.0".into()),
            command_line: vec!["prnn".into(), "train".into()],
            spec_path: "specs/id_only.prnn".into(),
            config_path: "examples/demo.toml".into(),
            config_dir: "/repo/examples".into(),
            spec_hash: crate::run::hash("model m"),
            config_hash: crate::run::hash("[data]"),
            model_hash: crate::run::hash("{}"),
            overrides: vec!["epochs=2".into(), "seed=1".into()],
            max_batches: None,
            device: "cpu".into(),
            step: "fused".into(),
            parameters: 1234,
            validation: true,
            model: serde_json::json!({ "name": "m" }),
            checksum: None,
        }
    }

    #[test]
    fn a_run_folder_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), "model m {}\n", "[data]\n", &record()).unwrap();
        let folder = read_run(dir.path()).unwrap();
        assert!(folder.record.checksum.is_some(), "written sealed");
        assert_eq!(RunRecord { checksum: None, ..folder.record.clone() }, record());
        assert_eq!(folder.record.step_choice(), Some(StepChoice::Fused));
        assert_eq!(folder.spec.text, "model m {}\n");
        assert_eq!(folder.spec.name, dir.path().join(SPEC_FILE).display().to_string(), "diagnostics name the folder's copy");
        assert_eq!(folder.config_text, "[data]\n");
    }

    #[test]
    fn an_edited_record_is_refused_and_one_older_than_checksums_is_read() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), "model m {}\n", "[data]\n", &record()).unwrap();
        let path = dir.path().join(RECORD_FILE);
        let written = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, written.replace("\"parameters\": 1234", "\"parameters\": 1235")).unwrap();
        let error = read_run(dir.path()).unwrap_err();
        assert!(matches!(error, RunError::Altered { .. }), "{error:?}");
        // Spacing is not content: a record pretty-printed again still reads.
        let value: serde_json::Value = serde_json::from_str(&written).unwrap();
        std::fs::write(&path, serde_json::to_string(&value).unwrap()).unwrap();
        assert!(read_run(dir.path()).is_ok());
        std::fs::write(&path, serde_json::to_string_pretty(&record()).unwrap()).unwrap();
        assert_eq!(read_run(dir.path()).unwrap().record, record(), "a record without a checksum is read unverified");
    }

    #[test]
    fn records_older_than_the_step_choice_still_read() {
        let mut value = serde_json::to_value(record()).unwrap();
        let fields = value.as_object_mut().unwrap();
        fields.remove("step");
        fields.remove("validation");
        let old: RunRecord = serde_json::from_value(value).unwrap();
        assert_eq!((old.step_choice(), old.validation), (None, false));
    }

    #[test]
    fn a_folder_without_a_record_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_run(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(error, RunError::NotARunFolder { .. }), "{error:?}");
        assert_eq!(error.help(), Some("give the folder `prnn train` wrote"));
        let error = read_run(dir.path()).unwrap_err();
        assert!(error.to_string().starts_with("cannot read run record `"), "{error}");

        std::fs::write(dir.path().join(RECORD_FILE), "{ \"prnn_version\": ").unwrap();
        let error = read_run(dir.path()).unwrap_err();
        assert!(matches!(error, RunError::Damaged { .. }), "{error:?}");
        assert_eq!(error.help(), Some("the run folder cannot be used; train again"));
    }

    #[test]
    fn a_baseline_folder_reads_back_and_its_name_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = BaselineRecord {
            prnn_version: "0.1.0".into(),
            command_line: vec![],
            baseline: "item_knn".into(),
            settings: serde_json::json!({ "neighbours": 100 }),
            config_path: "run.toml".into(),
            config_dir: "/data".into(),
            config_hash: crate::run::hash("[data]\n"),
            validation: false,
            fit_seconds: 0.25,
        };
        write_baseline(dir.path(), "[data]\n", &record).unwrap();
        let folder = read_baseline(dir.path()).unwrap();
        assert_eq!((folder.record, folder.config.text.as_str()), (record.clone(), "[data]\n"));

        record.baseline = "item_kmn".into();
        write_baseline(dir.path(), "[data]\n", &record).unwrap();
        let error = read_baseline(dir.path()).unwrap_err();
        assert!(error.to_string().ends_with("names an unknown baseline `item_kmn`"), "{error}");
        std::fs::write(dir.path().join(BASELINE_FILE), "[]").unwrap();
        assert_eq!(read_baseline(dir.path()).unwrap_err().help(), Some("run `prnn baseline` again"));
    }
}
