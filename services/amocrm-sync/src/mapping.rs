//! What amoCRM's ids mean in this account: the status map (stage id → our status name) and the
//! custom-field ids of UTM marks, deal figures, phones and e-mails. Configuration, not code:
//! defaults, then `AMOCRM_MAPPING_FILE`, then the `AMOCRM_STATUS_MAP` / `AMOCRM_FIELD_*`
//! variables.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;
use service_kit::ConfigError;

use crate::config::Config;

/// amoCRM's system stages, the same in every pipeline: 142 "successfully realized", 143 "closed
/// and not realized" (<https://www.amocrm.ru/developers/content/crm_platform/leads_pipelines>).
pub const WON: i64 = 142;
/// amoCRM's "closed and not realized" stage (lost), see [`WON`].
pub const LOST: i64 = 143;

/// Default status map of the existing deployment.
pub const DEFAULT_STATUSES: &[(i64, &str)] = &[
    (1, "new"),
    (2, "contacted"),
    (3, "presentation"),
    (4, "object_selected"),
    (5, "reserved"),
    (6, "deal"),
    (7, "completed"),
    (WON, "won"),
    (LOST, "lost"),
];

/// Custom-field ids the normalizer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldIds {
    /// Lead field holding `utm_source` (`AMOCRM_FIELD_UTM_SOURCE`, default 123458).
    pub utm_source: i64,
    /// Lead field holding `utm_medium` (`AMOCRM_FIELD_UTM_MEDIUM`, default 123459).
    pub utm_medium: i64,
    /// Lead field holding `utm_campaign` (`AMOCRM_FIELD_UTM_CAMPAIGN`, default 123460).
    pub utm_campaign: i64,
    /// Lead field holding `utm_content` (`AMOCRM_FIELD_UTM_CONTENT`, default 123461).
    pub utm_content: i64,
    /// Lead field holding `utm_term` (`AMOCRM_FIELD_UTM_TERM`, default 123462).
    pub utm_term: i64,
    /// Lead field holding the object price (`AMOCRM_FIELD_OBJECT_PRICE`, default 123463).
    pub object_price: i64,
    /// Lead field holding the commission (`AMOCRM_FIELD_COMMISSION`, default 123464).
    pub commission: i64,
    /// Contact field holding phones (`AMOCRM_FIELD_PHONE`, default 123456).
    pub phone: i64,
    /// Contact field holding e-mails (`AMOCRM_FIELD_EMAIL`, default 123457).
    pub email: i64,
}

impl Default for FieldIds {
    fn default() -> Self {
        Self {
            phone: 123_456,
            email: 123_457,
            utm_source: 123_458,
            utm_medium: 123_459,
            utm_campaign: 123_460,
            utm_content: 123_461,
            utm_term: 123_462,
            object_price: 123_463,
            commission: 123_464,
        }
    }
}

/// The mapping in force.
#[derive(Debug)]
pub struct Mapping {
    statuses: HashMap<i64, String>,
    /// Custom-field ids.
    pub fields: FieldIds,
    /// Country whose rules read phones written without `+<country code>` (`AMOCRM_PHONE_REGION`,
    /// default RU).
    pub phone_region: phonenumber::country::Id,
    /// Stage ids already reported as unmapped (each is logged once per process).
    unknown_logged: Mutex<HashSet<i64>>,
}

/// The mapping file or a mapping variable is wrong.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("AMOCRM_MAPPING_FILE {path}: {reason}")]
    /// The mapping file cannot be read, is not the expected JSON, or has a status id that is not
    /// a number.
    File {
        /// The file's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `AMOCRM_STATUS_MAP` entry (quoted) is not `<status_id>=<name>`.
    #[error("AMOCRM_STATUS_MAP: `{0}` is not <status_id>=<name>")]
    StatusMap(String),
    /// `AMOCRM_PHONE_REGION` (quoted) is not a known two-letter country code.
    #[error("AMOCRM_PHONE_REGION: `{0}` is not a two-letter country code")]
    Region(String),
}

impl MappingError {
    /// The same problem as a [`ConfigError`] naming the variable (`cli::main` prints it as one
    /// line and exits 2).
    pub fn into_config_error(self) -> ConfigError {
        let (name, reason) = match self {
            MappingError::File { path, reason } => {
                ("AMOCRM_MAPPING_FILE", format!("{path}: {reason}"))
            }
            MappingError::StatusMap(entry) => (
                "AMOCRM_STATUS_MAP",
                format!("`{entry}` is not <status_id>=<name>"),
            ),
            MappingError::Region(region) => (
                "AMOCRM_PHONE_REGION",
                format!("`{region}` is not a two-letter country code"),
            ),
        };
        ConfigError::Invalid { name, reason }
    }
}

/// `AMOCRM_MAPPING_FILE`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    statuses: Option<HashMap<String, String>>,
    #[serde(default)]
    fields: FileFields,
    #[serde(default)]
    phone_region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFields {
    utm_source: Option<i64>,
    utm_medium: Option<i64>,
    utm_campaign: Option<i64>,
    utm_content: Option<i64>,
    utm_term: Option<i64>,
    object_price: Option<i64>,
    commission: Option<i64>,
    phone: Option<i64>,
    email: Option<i64>,
}

impl Mapping {
    /// Defaults, overlaid by the file, overlaid by the variables.
    pub fn load(c: &Config) -> Result<Self, MappingError> {
        let file = match &c.amocrm_mapping_file {
            Some(path) => read_file(path)?,
            None => MappingFile::default(),
        };
        let mut statuses: Option<HashMap<i64, String>> = match file.statuses {
            Some(m) => Some(
                m.into_iter()
                    .map(|(k, v)| {
                        k.trim()
                            .parse::<i64>()
                            .map(|k| (k, v))
                            .map_err(|_| MappingError::File {
                                path: path_str(c),
                                reason: format!("status id `{k}` is not a number"),
                            })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            None => None,
        };
        if let Some(s) = c
            .amocrm_status_map
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            statuses = Some(parse_status_map(s)?);
        }
        let mut mapping = Self::with_statuses(statuses);
        let d = FieldIds::default();
        let f = &file.fields;
        mapping.fields = FieldIds {
            utm_source: c
                .amocrm_field_utm_source
                .or(f.utm_source)
                .unwrap_or(d.utm_source),
            utm_medium: c
                .amocrm_field_utm_medium
                .or(f.utm_medium)
                .unwrap_or(d.utm_medium),
            utm_campaign: c
                .amocrm_field_utm_campaign
                .or(f.utm_campaign)
                .unwrap_or(d.utm_campaign),
            utm_content: c
                .amocrm_field_utm_content
                .or(f.utm_content)
                .unwrap_or(d.utm_content),
            utm_term: c.amocrm_field_utm_term.or(f.utm_term).unwrap_or(d.utm_term),
            object_price: c
                .amocrm_field_object_price
                .or(f.object_price)
                .unwrap_or(d.object_price),
            commission: c
                .amocrm_field_commission
                .or(f.commission)
                .unwrap_or(d.commission),
            phone: c.amocrm_field_phone.or(f.phone).unwrap_or(d.phone),
            email: c.amocrm_field_email.or(f.email).unwrap_or(d.email),
        };
        let region = c
            .amocrm_phone_region
            .clone()
            .or(file.phone_region)
            .unwrap_or_else(|| "RU".into());
        mapping.phone_region = region
            .trim()
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| MappingError::Region(region.clone()))?;
        Ok(mapping)
    }

    /// The defaults, with `statuses` replacing 1…7 when given (142/143 stay unless given).
    pub fn with_statuses(statuses: Option<HashMap<i64, String>>) -> Self {
        let mut map: HashMap<i64, String> = match statuses {
            Some(m) => m,
            None => DEFAULT_STATUSES
                .iter()
                .map(|(k, v)| (*k, (*v).to_owned()))
                .collect(),
        };
        map.entry(WON).or_insert_with(|| "won".into());
        map.entry(LOST).or_insert_with(|| "lost".into());
        Self {
            statuses: map,
            fields: FieldIds::default(),
            phone_region: phonenumber::country::Id::RU,
            unknown_logged: Mutex::new(HashSet::new()),
        }
    }

    /// Our name of a stage; an unmapped stage is logged once and stays `None` (the raw id is
    /// stored).
    pub fn status_name(&self, status_id: i64) -> Option<String> {
        if let Some(name) = self.statuses.get(&status_id) {
            return Some(name.clone());
        }
        let first = self
            .unknown_logged
            .lock()
            .map(|mut seen| seen.insert(status_id))
            .unwrap_or(false);
        if first {
            tracing::warn!(
                status_id,
                "amoCRM status not in the status map; stored with its raw id (add it to AMOCRM_STATUS_MAP)"
            );
            metrics::counter!("amocrm_unmapped_statuses_total").increment(1);
        }
        None
    }
}

impl Default for Mapping {
    fn default() -> Self {
        Self::with_statuses(None)
    }
}

fn path_str(c: &Config) -> String {
    c.amocrm_mapping_file
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn read_file(path: &Path) -> Result<MappingFile, MappingError> {
    let err = |reason: String| MappingError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

/// `31245=new, 31246=contacted`.
pub fn parse_status_map(s: &str) -> Result<HashMap<i64, String>, MappingError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (id, name) = pair
                .split_once('=')
                .ok_or_else(|| MappingError::StatusMap(pair.to_owned()))?;
            let id = id
                .trim()
                .parse::<i64>()
                .map_err(|_| MappingError::StatusMap(pair.to_owned()))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(MappingError::StatusMap(pair.to_owned()));
            }
            Ok((id, name.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_existing_deployment() {
        let m = Mapping::default();
        assert_eq!(m.status_name(1).as_deref(), Some("new"));
        assert_eq!(m.status_name(4).as_deref(), Some("object_selected"));
        assert_eq!(m.status_name(142).as_deref(), Some("won"));
        assert_eq!(m.status_name(143).as_deref(), Some("lost"));
        assert_eq!(m.status_name(999), None);
        assert_eq!(m.fields.utm_source, 123_458);
        assert_eq!(m.fields.commission, 123_464);
    }

    fn config(args: &[&str]) -> Config {
        use clap::Parser;
        let mut argv = vec!["amocrm-sync", "--database-url=postgres://x@localhost/db"];
        argv.extend_from_slice(args);
        crate::config::Cli::try_parse_from(argv)
            .expect("flags parse")
            .config
    }

    #[test]
    fn the_mapping_file_is_read_and_variables_win_over_it() {
        let path = std::env::temp_dir().join(format!("amocrm-mapping-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"statuses": {"31245001": "new", "31245002": "hot"},
                "fields": {"utm_source": 582231, "commission": 582240, "phone": 412345},
                "phone_region": "kz"}"#,
        )
        .unwrap();
        let file = format!("--amocrm-mapping-file={}", path.display());
        let m = Mapping::load(&config(&[&file, "--amocrm-field-commission=1"])).expect("loads");
        assert_eq!(m.status_name(31_245_002).as_deref(), Some("hot"));
        assert_eq!(
            m.status_name(1),
            None,
            "the file's map replaces the defaults"
        );
        assert_eq!(m.status_name(143).as_deref(), Some("lost"));
        assert_eq!(m.fields.utm_source, 582_231);
        assert_eq!(m.fields.commission, 1, "the variable wins");
        assert_eq!(m.fields.utm_medium, 123_459, "defaults fill the rest");
        assert_eq!(m.phone_region, phonenumber::country::Id::KZ);
        let m = Mapping::load(&config(&[&file, "--amocrm-status-map=7=done"])).expect("loads");
        assert_eq!(m.status_name(7).as_deref(), Some("done"));
        assert_eq!(m.status_name(31_245_002), None);
        std::fs::write(&path, r#"{"statuses": {"x": "y"}}"#).unwrap();
        let e = Mapping::load(&config(&[&file])).unwrap_err().to_string();
        assert!(e.starts_with("AMOCRM_MAPPING_FILE"), "{e}");
        std::fs::write(&path, r#"{"fieldz": {}}"#).unwrap();
        assert!(
            Mapping::load(&config(&[&file])).is_err(),
            "unknown keys are refused"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_status_map_replaces_the_stages_but_keeps_won_and_lost() {
        let m = Mapping::with_statuses(Some(parse_status_map("31245=new, 31246=hot").unwrap()));
        assert_eq!(m.status_name(31246).as_deref(), Some("hot"));
        assert_eq!(m.status_name(1), None);
        assert_eq!(m.status_name(142).as_deref(), Some("won"));
        assert!(parse_status_map("abc=x").is_err());
        assert!(parse_status_map("1=").is_err());
    }
}
