//! A test CA made with `openssl`, and certificates it signs.

use std::path::PathBuf;
use std::process::Command;

/// A test CA and certificates it signs (EC P-256, two days).
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: PathBuf) -> Pki {
        let pki = Pki { dir };
        pki.ca("ca");
        pki.ca("other-ca");
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(&self.dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=Playdeck test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// A certificate `name.pem` / `name.key` signed by the CA, with these names and this use.
    pub fn leaf(&self, name: &str, cn: &str, san: Option<&str>, usage: &str) -> (PathBuf, PathBuf) {
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ]);
        let mut ext = format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n");
        if let Some(san) = san {
            ext.push_str(&format!("subjectAltName={san}\n"));
        }
        std::fs::write(self.dir.join(format!("{name}.ext")), ext).expect("ext");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
        (self.dir.join(format!("{name}.pem")), self.dir.join(format!("{name}.key")))
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}
