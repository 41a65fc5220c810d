//! Real IRC servers for tests, each in its own temp dir on a free loopback port.

use crate::{free_port, install};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct NgircdOptions {
    /// Server name; two servers in one test should differ.
    pub name: String,
    /// The server's default flood penalties (a client that sends too fast is slowed
    /// down and eventually disconnected); off removes them (`MaxPenaltyTime = 0`).
    pub flood_throttling: bool,
}

impl Default for NgircdOptions {
    fn default() -> Self {
        Self {
            name: "irc.test".into(),
            flood_throttling: false,
        }
    }
}

/// ngircd, killed on drop. `stop` and `restart` keep the port, as a real server
/// coming back would.
pub struct Ngircd {
    port: u16,
    config: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Ngircd {
    pub fn start(options: NgircdOptions) -> Self {
        let binary = install::ensure("ngircd", "ngircd");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let penalty = if options.flood_throttling {
            ""
        } else {
            "\tMaxPenaltyTime = 0\n"
        };
        let config = format!(
            "[Global]\n\tName = {name}\n\tInfo = switchboard test server\n\tListen = 127.0.0.1\n\tPorts = {port}\n\
             \tPidFile = {dir}/ngircd.pid\n\tMotdPhrase = \"test\"\n\tServerUID = {uid}\n\tServerGID = {gid}\n\
             [Limits]\n\tMaxConnections = 0\n\tMaxConnectionsIP = 0\n\tMaxJoins = 0\n\tMaxNickLength = 30\n{penalty}\
             \tPingTimeout = 600\n\tPongTimeout = 60\n\
             [Options]\n\tDNS = no\n\tIdent = no\n\tPAM = no\n",
            name = options.name,
            dir = dir.path().display(),
            uid = current_id("-u"),
            gid = current_id("-g"),
        );
        let config_path = dir.path().join("ngircd.conf");
        std::fs::write(&config_path, config).expect("write ngircd.conf");
        let mut server = Self {
            port,
            config: config_path,
            child: None,
            _dir: dir,
        };
        server.spawn(&binary);
        server
    }

    fn spawn(&mut self, binary: &Path) {
        let child = Command::new(binary)
            .args(["-n", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ngircd");
        self.child = Some(child);
        wait_for_port(self.port, "ngircd");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (all its clients are disconnected).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let binary = install::ensure("ngircd", "ngircd");
        self.spawn(&binary);
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// InspIRCd 3 with the IRCv3 modules (message-tags, server-time, echo-message, msgid).
pub struct Inspircd {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Inspircd {
    pub fn start() -> Self {
        let binary = install::ensure("inspircd", "inspircd");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let path = dir.path().display().to_string();
        std::fs::write(dir.path().join("motd.txt"), "test\n").expect("motd");
        let config = INSPIRCD_CONF
            .replace("@DIR@", &path)
            .replace("@PORT@", &port.to_string());
        let config_path = dir.path().join("inspircd.conf");
        std::fs::write(&config_path, config).expect("write inspircd.conf");
        let child = Command::new(binary)
            .arg(format!("--config={}", config_path.display()))
            .args(["--nofork", "--runasroot"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start inspircd");
        wait_for_port(port, "inspircd");
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Inspircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn current_id(flag: &str) -> String {
    Command::new("id")
        .arg(flag)
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| "0".into())
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Loopback test config: no DNS, no throttling, the IRCv3 modules a bridge uses.
const INSPIRCD_CONF: &str = r#"<server name="irc.test" description="loopback test server" network="TestNet">
<admin name="test" nick="test" email="test@localhost">
<bind address="127.0.0.1" port="@PORT@" type="clients">
<connect allow="*" timeout="60" pingfreq="600" threshold="1000000" commandrate="100000000" fakelag="no"
         recvq="1M" softsendq="1M" hardsendq="16M" localmax="1000" globalmax="1000" useident="no"
         resolvehostnames="no" limit="5000">
<class name="All" commands="*" privs="*" usermodes="*" chanmodes="*">
<type name="NetAdmin" classes="All">
<files motd="@DIR@/motd.txt">
<channels users="1000" opers="1000">
<dns server="127.0.0.1" timeout="1">
<pid file="@DIR@/inspircd.pid">
<options prefixquit="Quit: " syntaxhints="no" announcets="yes">
<security hideserver="" userstats="Pu" customversion="" maxtargets="20">
<performance netbuffersize="65536" somaxconn="128" softlimit="12800" clonesonconnect="no" quietbursts="yes">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="@DIR@/ircd.log">
<module name="cap">
<module name="ircv3">
<module name="ircv3_batch">
<module name="ircv3_capnotify">
<module name="ircv3_ctctags">
<module name="ircv3_echomessage">
<module name="ircv3_labeledresponse">
<module name="ircv3_msgid">
<module name="ircv3_servertime">
"#;
