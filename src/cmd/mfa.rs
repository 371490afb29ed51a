//! `iamd mfa`: virtual MFA devices in the credentials directory, the way
//! the console's "Assign MFA device" does it: a new device's seed as an
//! `otpauth://` URI and a QR code to scan into an authenticator app, then
//! two consecutive codes from the app to activate it.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use iamd_credentials::file::{self, MfaDevice, MfaStatus};
use iamd_credentials::key::Secret;
use iamd_credentials::totp;

use super::secrets::{Dir, Failure, bundle_with, finish, read, refused};

/// How many steps back the first of the two activation codes may be (five
/// minutes: time to scan, type one code, wait for the next).
const ACTIVATION_WINDOW_STEPS: i64 = 10;

/// `iamd mfa` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum MfaCommand {
    /// Give a user (or the root) a virtual MFA device: prints its
    /// `otpauth://` URI and QR code once, then activates it with two
    /// consecutive codes (`--code1`, `--code2`, or asked for on a
    /// terminal). Without codes the device waits, pending.
    Enable(EnableArgs),
    /// List the devices: serial number, owner, status, activation time.
    /// Never the seeds.
    List(Dir),
    /// Take a user's (or the root's) device away; a new one can be enabled.
    Deactivate(OwnerArgs),
}

/// `iamd mfa deactivate` options.
#[derive(Debug, clap::Args)]
pub(crate) struct OwnerArgs {
    /// `user/NAME`, or `root`.
    pub(crate) principal: String,
    #[command(flatten)]
    pub(crate) dir: Dir,
}

/// `iamd mfa enable` options.
#[derive(Debug, clap::Args)]
pub(crate) struct EnableArgs {
    /// `user/NAME`, or `root`.
    pub(crate) principal: String,
    #[command(flatten)]
    pub(crate) dir: Dir,
    /// The account (12 digits), for the serial number
    /// `arn:aws:iam::ACCOUNT:mfa/NAME`; or give `--bundle`.
    #[arg(long, value_name = "ID")]
    pub(crate) account: Option<String>,
    /// The bundle: its account, and the user must be one of its users.
    #[arg(long, value_name = "PATH")]
    pub(crate) bundle: Option<PathBuf>,
    /// The first code the app shows for the device.
    #[arg(long, requires = "code2", value_name = "CODE")]
    pub(crate) code1: Option<String>,
    /// The next code it shows (30 seconds later).
    #[arg(long, requires = "code1", value_name = "CODE")]
    pub(crate) code2: Option<String>,
    /// The issuer an authenticator app shows [default: iamd].
    #[arg(long, default_value = "iamd")]
    pub(crate) issuer: String,
}

/// Runs an `iamd mfa` command.
pub(crate) fn run(command: &MfaCommand) -> io::Result<ExitCode> {
    let result = match command {
        MfaCommand::Enable(args) => enable(args),
        MfaCommand::List(args) => list(args),
        MfaCommand::Deactivate(args) => deactivate(args),
    };
    finish(result)
}

/// The owner of `text`: `Some(user)` for `user/NAME`, `None` for `root`.
fn owner(text: &str) -> Result<Option<&str>, Failure> {
    if text == "root" {
        return Ok(None);
    }
    match text.strip_prefix("user/") {
        Some(name) if file::is_user_name(name) => Ok(Some(name)),
        _ => Err(refused(format!(
            "{text:?} has no MFA device to manage: give user/NAME or root"
        ))),
    }
}

fn owner_text(user: Option<&str>) -> String {
    user.map_or_else(|| "root".to_owned(), |u| format!("user/{u}"))
}

/// The account of the serial number, from `--account` or the bundle, and
/// the check that the bundle has the user.
fn account(args: &EnableArgs, user: Option<&str>) -> Result<String, Failure> {
    if let Some(path) = &args.bundle {
        let bundle = bundle_with(path, user)?;
        if args
            .account
            .as_deref()
            .is_some_and(|a| a != bundle.account())
        {
            return Err(refused(format!(
                "--account differs from the bundle's account {}",
                bundle.account()
            )));
        }
        return Ok(bundle.account().to_owned());
    }
    match &args.account {
        Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => Ok(a.clone()),
        Some(a) => Err(refused(format!("--account {a:?} is not 12 digits"))),
        None => Err(refused(
            "give --account ID or --bundle PATH: the serial number names the account",
        )),
    }
}

fn enable(args: &EnableArgs) -> Result<ExitCode, Failure> {
    let user = owner(&args.principal)?;
    let mut credentials = read(&args.dir.dir)?;
    let at = match credentials
        .mfa_devices
        .iter()
        .position(|d| d.user.as_deref() == user)
    {
        Some(at) if credentials.mfa_devices[at].status == MfaStatus::Active => {
            return Err(refused(format!(
                "{} already has an active MFA device ({}): `iamd mfa deactivate {}` first",
                owner_text(user),
                credentials.mfa_devices[at].serial,
                args.principal
            )));
        }
        Some(at) => at,
        None => {
            let account = account(args, user)?;
            let seed = totp::new_seed().map_err(|e| refused(e.to_string()))?;
            let serial = file::mfa_serial(&account, user);
            let name = format!("{}@{account}", user.unwrap_or("root"));
            let uri = totp::otpauth_uri(&args.issuer, &name, &seed);
            credentials.mfa_devices.push(MfaDevice {
                serial: serial.clone(),
                user: user.map(str::to_owned),
                seed: Secret::new(totp::base32(&seed)),
                status: MfaStatus::Pending,
                enabled: None,
            });
            credentials.write(&args.dir.dir)?;
            let qr = qrcode::QrCode::new(uri.as_bytes())
                .map(|q| {
                    q.render::<qrcode::render::unicode::Dense1x2>()
                        .quiet_zone(true)
                        .build()
                })
                .unwrap_or_default();
            let mut out = io::stdout().lock();
            writeln!(out, "{qr}")?;
            writeln!(out, "{uri}")?;
            writeln!(out, "SerialNumber: {serial}")?;
            eprintln!(
                "Scan the QR code (or enter the secret of the URI) in an authenticator app; this is the only time it is shown."
            );
            credentials.mfa_devices.len() - 1
        }
    };
    let codes = match (&args.code1, &args.code2) {
        (Some(a), Some(b)) => Some((a.trim().to_owned(), b.trim().to_owned())),
        _ if io::stdin().is_terminal() => Some((
            ask("First code: ")?,
            ask("Next code (when the app shows a new one): ")?,
        )),
        _ => None,
    };
    let device = &mut credentials.mfa_devices[at];
    let Some((first, second)) = codes else {
        eprintln!(
            "{} is pending: activate it with two consecutive codes: iamd mfa enable {} --code1 CODE --code2 CODE",
            device.serial, args.principal
        );
        return Ok(ExitCode::SUCCESS);
    };
    let seed = totp::from_base32(device.seed.expose()).ok_or_else(|| {
        refused("the device's seed is not base32: deactivate it and enable a new one")
    })?;
    let now = jiff::Timestamp::now();
    if totp::consecutive(&seed, &first, &second, now, ACTIVATION_WINDOW_STEPS).is_none() {
        return Err(refused(format!(
            "the codes are not two consecutive codes of {} from the last five minutes: check the device's clock, and give the code shown, then the next one",
            device.serial
        )));
    }
    device.status = MfaStatus::Active;
    device.enabled = now.round(jiff::Unit::Second).ok();
    let serial = device.serial.clone();
    credentials.write(&args.dir.dir)?;
    eprintln!("{serial} of {} is active", owner_text(user));
    Ok(ExitCode::SUCCESS)
}

/// One line from the terminal, after `prompt`.
fn ask(prompt: &str) -> io::Result<String> {
    eprint!("{prompt}");
    io::stderr().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

fn list(args: &Dir) -> Result<ExitCode, Failure> {
    let credentials = read(&args.dir)?;
    let mut out = io::stdout().lock();
    for d in &credentials.mfa_devices {
        let enabled = d.enabled.map_or_else(|| "-".to_owned(), |t| t.to_string());
        writeln!(
            out,
            "{}  {}  {:<7}  {enabled}",
            d.serial,
            owner_text(d.user.as_deref()),
            d.status.as_str()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn deactivate(args: &OwnerArgs) -> Result<ExitCode, Failure> {
    let user = owner(&args.principal)?;
    let mut credentials = read(&args.dir.dir)?;
    let Some(at) = credentials
        .mfa_devices
        .iter()
        .position(|d| d.user.as_deref() == user)
    else {
        return Err(refused(format!("{} has no MFA device", owner_text(user))));
    };
    let device = credentials.mfa_devices.remove(at);
    credentials.write(&args.dir.dir)?;
    eprintln!(
        "{} of {} is deactivated and deleted",
        device.serial,
        owner_text(user)
    );
    Ok(ExitCode::SUCCESS)
}
