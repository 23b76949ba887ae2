//! Vagrant boxes from a built disk (formats in the project's reference, `formats.md` §3):
//!
//! * `vagrant-libvirt`: a gzip-compressed tar with `metadata.json` (`provider` libvirt, `format`
//!   qcow2, `virtual_size` in GiB rounded up), a `Vagrantfile` (libvirt provider settings and the
//!   rsync sync folder rpm-ostree-toolbox passed to ImageFactory) and `box.img`, the qcow2;
//! * `vagrant-virtualbox`: a plain tar with `box.ovf` first, `box-disk1.vmdk` (streamOptimized,
//!   already compressed), a `Vagrantfile` with `config.vm.base_mac` and `metadata.json`
//!   (`provider` virtualbox).
//!
//! Tar headers are deterministic (mtime = `SOURCE_DATE_EPOCH` or 0, uid/gid 0, mode 0644) and the
//! gzip header carries no time or name, so the same inputs give the same box. The MAC address and
//! the OVF's UUIDs are derived from the disk's GUID (itself derived from the job's ids with
//! `SOURCE_DATE_EPOCH`).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The guest path of the synced folder: `/vagrant` is not writable on an OSTree host, so
/// rpm-ostree-toolbox passed `vagrant_sync_directory=/home/vagrant/sync` to ImageFactory.
pub const SYNC_DIRECTORY: &str = "/home/vagrant/sync";
/// The disk's file name inside the VirtualBox box (Vagrant's documented layout).
pub const VMDK_NAME: &str = "box-disk1.vmdk";

/// The virtual machine a box describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxVm {
    /// Name of the virtual system (the output name).
    pub name: String,
    /// Disk size in bytes.
    pub capacity: u64,
    /// NAT adapter MAC (VirtualBox OUI 08:00:27).
    pub mac: [u8; 6],
    pub vm_uuid: Uuid,
    pub disk_uuid: Uuid,
    pub cpus: u32,
    pub memory_mib: u32,
}

fn derive(seed: &Uuid, purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update(purpose.as_bytes());
    h.finalize().into()
}

impl BoxVm {
    /// Ids derived from the disk GUID: the same disk gives the same MAC and UUIDs.
    pub fn new(name: &str, capacity: u64, disk_guid: &Uuid) -> BoxVm {
        let m = derive(disk_guid, "vagrant-virtualbox-mac");
        let id = |p: &str| {
            let d = derive(disk_guid, p);
            let mut b = [0u8; 16];
            b.copy_from_slice(&d[..16]);
            uuid::Builder::from_random_bytes(b).into_uuid()
        };
        BoxVm {
            name: name.to_string(),
            capacity,
            mac: [0x08, 0x00, 0x27, m[0], m[1], m[2]],
            vm_uuid: id("vagrant-virtualbox-vm"),
            disk_uuid: id("vagrant-virtualbox-disk"),
            cpus: 1,
            memory_mib: 1024,
        }
    }

    /// `080027AABBCC`: the form of `config.vm.base_mac` and VirtualBox's `MACAddress`.
    pub fn mac_hex(&self) -> String {
        self.mac.iter().map(|b| format!("{b:02X}")).collect()
    }
}

/// vagrant-libvirt's `metadata.json`.
pub fn libvirt_metadata(capacity: u64) -> String {
    format!(
        "{{\"provider\": \"libvirt\", \"format\": \"qcow2\", \"virtual_size\": {}}}\n",
        capacity.div_ceil(1 << 30)
    )
}

/// The libvirt box's `Vagrantfile` (ImageFactory's, with the toolbox's sync directory).
pub fn libvirt_vagrantfile() -> String {
    format!(
        "Vagrant.configure('2') do |config|\n\
         \x20 config.vm.synced_folder \".\", \"{SYNC_DIRECTORY}\", type: \"rsync\"\n\
         \x20 config.vm.provider :libvirt do |libvirt|\n\
         \x20   libvirt.driver = 'kvm'\n\
         \x20   libvirt.connect_via_ssh = false\n\
         \x20   libvirt.username = 'root'\n\
         \x20   libvirt.storage_pool_name = 'default'\n\
         \x20 end\n\
         end\n"
    )
}

/// The VirtualBox box's `Vagrantfile`: the base MAC must match the OVF's NAT adapter.
pub fn virtualbox_vagrantfile(vm: &BoxVm) -> String {
    format!(
        "Vagrant.configure(\"2\") do |config|\n\
         \x20 config.vm.base_mac = \"{}\"\n\
         \x20 config.vm.synced_folder \".\", \"{SYNC_DIRECTORY}\", type: \"rsync\"\n\
         end\n",
        vm.mac_hex()
    )
}

pub const VIRTUALBOX_METADATA: &str = "{\"provider\": \"virtualbox\"}\n";

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The OVF 1.0 descriptor VirtualBox imports: the streamOptimized disk, a NAT network, a 64-bit
/// Fedora guest (CIM OS id 80 = RedHat 64-bit, VirtualBox type `Fedora_64`), CPU, memory, an IDE
/// controller with the disk, a NAT E1000 adapter, and the `vbox:Machine` section that carries the
/// adapter's MAC.
pub fn ovf(vm: &BoxVm, vmdk_size: u64) -> String {
    let name = xml_escape(&vm.name);
    let disk_uuid = vm.disk_uuid;
    let capacity = vm.capacity;
    let hardware = ovf_hardware(vm, &name);
    let machine = vbox_machine(vm, &name);
    format!(
        r#"<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="{VMDK_NAME}" ovf:size="{vmdk_size}"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="{capacity}" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="{disk_uuid}"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="80">
      <Info>The kind of installed guest operating system</Info>
      <Description>RedHat_64</Description>
      <vbox:OSType ovf:required="false">Fedora_64</vbox:OSType>
    </OperatingSystemSection>
{hardware}{machine}  </VirtualSystem>
</Envelope>
"#
    )
}

/// The OVF `VirtualHardwareSection` of the VM named `name` (escaped): CPUs, memory, the IDE
/// controllers with the disk, and the NAT E1000 adapter.
fn ovf_hardware(vm: &BoxVm, name: &str) -> String {
    let mac = vm.mac_hex();
    let cpus = vm.cpus;
    let mem = vm.memory_mib;
    format!(
        r#"    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>{cpus} virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>{cpus} virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{cpus}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>{mem} MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{mem} MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{mem}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>ideController0</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>1</rasd:Address>
        <rasd:Caption>ideController1</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController1</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>{mac}</rasd:Address>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
"#
    )
}

/// The `vbox:Machine` section of the VM named `name` (escaped): VirtualBox's own configuration,
/// which carries the adapter's MAC.
fn vbox_machine(vm: &BoxVm, name: &str) -> String {
    let mac = vm.mac_hex();
    let disk_uuid = vm.disk_uuid;
    let vm_uuid = vm.vm_uuid;
    let cpus = vm.cpus;
    let mem = vm.memory_mib;
    format!(
        r#"    <vbox:Machine ovf:required="false" version="1.12-linux" uuid="{{{vm_uuid}}}" name="{name}" OSType="Fedora_64" snapshotFolder="Snapshots">
      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>
      <Hardware>
        <CPU count="{cpus}">
          <PAE enabled="true"/>
          <LongMode enabled="true"/>
        </CPU>
        <Memory RAMSize="{mem}"/>
        <Boot>
          <Order position="1" device="HardDisk"/>
          <Order position="2" device="None"/>
          <Order position="3" device="None"/>
          <Order position="4" device="None"/>
        </Boot>
        <Network>
          <Adapter slot="0" enabled="true" MACAddress="{mac}" type="82540EM">
            <NAT/>
          </Adapter>
        </Network>
        <StorageControllers>
          <StorageController name="IDE Controller" type="PIIX4" PortCount="2" useHostIOCache="true" Bootable="true">
            <AttachedDevice type="HardDisk" port="0" device="0">
              <Image uuid="{{{disk_uuid}}}"/>
            </AttachedDevice>
          </StorageController>
        </StorageControllers>
      </Hardware>
    </vbox:Machine>
"#
    )
}

/// A tar writer with deterministic headers.
struct TarOut<W: Write> {
    b: tar::Builder<W>,
    mtime: u64,
}

impl<W: Write> TarOut<W> {
    fn new(w: W, mtime: u64) -> Self {
        let mut b = tar::Builder::new(w);
        b.mode(tar::HeaderMode::Deterministic);
        TarOut { b, mtime }
    }

    fn header(&self, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h
    }

    fn add_bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let mut h = self.header(data.len() as u64);
        self.b
            .append_data(&mut h, name, data)
            .with_context(|| format!("adding {name} to the box"))
    }

    fn add_file(&mut self, name: &str, path: &Path, progress: &dyn Fn(u64)) -> Result<()> {
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = f.metadata()?.len();
        let mut h = self.header(size);
        let r = Progress { inner: f, progress };
        self.b
            .append_data(&mut h, name, r)
            .with_context(|| format!("adding {name} to the box"))
    }

    fn finish(self) -> Result<W> {
        self.b.into_inner().context("finishing the box archive")
    }
}

struct Progress<'a, R> {
    inner: R,
    progress: &'a dyn Fn(u64),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Writes the vagrant-libvirt box (tar.gz) into `out`: `metadata.json`, `Vagrantfile`, then
/// `box.img` = the qcow2 at `qcow2`. `capacity` is the disk's virtual size in bytes.
pub fn write_libvirt_box(
    qcow2: &Path,
    capacity: u64,
    out: &File,
    mtime: u64,
    progress: &dyn Fn(u64),
) -> Result<()> {
    // gzip -6: the qcow2 holds filesystem data that compresses about 2:1; the header has no
    // name and mtime 0.
    let gz = GzEncoder::new(BufWriter::with_capacity(1 << 20, out), Compression::new(6));
    let mut t = TarOut::new(gz, mtime);
    t.add_bytes("metadata.json", libvirt_metadata(capacity).as_bytes())?;
    t.add_bytes("Vagrantfile", libvirt_vagrantfile().as_bytes())?;
    t.add_file("box.img", qcow2, progress)?;
    let mut w = t.finish()?.finish().context("finishing the gzip stream")?;
    w.flush()?;
    Ok(())
}

/// Writes the vagrant-virtualbox box (plain tar) into `out`: `box.ovf` first, the
/// streamOptimized VMDK at `vmdk`, `Vagrantfile`, `metadata.json`.
pub fn write_virtualbox_box(
    vm: &BoxVm,
    vmdk: &Path,
    out: &File,
    mtime: u64,
    progress: &dyn Fn(u64),
) -> Result<()> {
    let vmdk_size = std::fs::metadata(vmdk)
        .with_context(|| format!("reading {}", vmdk.display()))?
        .len();
    let mut t = TarOut::new(BufWriter::with_capacity(1 << 20, out), mtime);
    t.add_bytes("box.ovf", ovf(vm, vmdk_size).as_bytes())?;
    t.add_file(VMDK_NAME, vmdk, progress)?;
    t.add_bytes("Vagrantfile", virtualbox_vagrantfile(vm).as_bytes())?;
    t.add_bytes("metadata.json", VIRTUALBOX_METADATA.as_bytes())?;
    let mut w = t.finish()?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> BoxVm {
        BoxVm::new("f-1-2.x86_64", 10 << 30, &Uuid::from_u128(42))
    }

    #[test]
    fn ids_are_derived_and_stable() {
        let a = vm();
        let b = vm();
        assert_eq!(a, b);
        assert_eq!(&a.mac[..3], &[0x08, 0x00, 0x27]);
        assert_ne!(a.vm_uuid, a.disk_uuid);
        let c = BoxVm::new("f-1-2.x86_64", 10 << 30, &Uuid::from_u128(43));
        assert_ne!(a.mac, c.mac);
        assert_eq!(a.mac_hex().len(), 12);
    }

    #[test]
    fn libvirt_metadata_rounds_up() {
        let v: serde_json::Value = serde_json::from_str(&libvirt_metadata(10 << 30)).unwrap();
        assert_eq!(v["virtual_size"], 10);
        assert_eq!(v["provider"], "libvirt");
        assert_eq!(v["format"], "qcow2");
        let v: serde_json::Value = serde_json::from_str(&libvirt_metadata((10 << 30) + 1)).unwrap();
        assert_eq!(v["virtual_size"], 11);
    }

    /// The OVF's key fields, read back with an XML parser; the MAC matches the Vagrantfile's.
    #[test]
    fn ovf_fields() {
        let vm = vm();
        let text = ovf(&vm, 1234);
        let doc = roxmltree::Document::parse(&text).unwrap();
        const OVF: &str = "http://schemas.dmtf.org/ovf/envelope/1";
        const RASD: &str =
            "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData";
        let find = |name: &str| {
            doc.descendants()
                .find(|n| n.tag_name().name() == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let file = find("File");
        assert_eq!(file.attribute((OVF, "href")), Some(VMDK_NAME));
        assert_eq!(file.attribute((OVF, "size")), Some("1234"));
        let disk = find("Disk");
        assert_eq!(
            disk.attribute((OVF, "capacity")),
            Some((10u64 << 30).to_string().as_str())
        );
        assert_eq!(
            disk.attribute((OVF, "format")),
            Some("http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized")
        );
        assert_eq!(find("Network").attribute((OVF, "name")), Some("NAT"));
        assert_eq!(
            find("OperatingSystemSection").attribute((OVF, "id")),
            Some("80")
        );
        assert_eq!(find("OSType").text(), Some("Fedora_64"));
        let items: Vec<_> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "Item")
            .map(|i| {
                let get = |k: &str| {
                    i.children()
                        .find(|c| {
                            c.tag_name().namespace() == Some(RASD) && c.tag_name().name() == k
                        })
                        .and_then(|c| c.text())
                        .unwrap_or("")
                        .to_string()
                };
                (
                    get("ResourceType"),
                    get("VirtualQuantity"),
                    get("Address"),
                    get("Connection"),
                )
            })
            .collect();
        let types: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
        assert_eq!(types, ["3", "4", "5", "5", "17", "10"]);
        assert_eq!(items[0].1, "1");
        assert_eq!(items[1].1, "1024");
        assert_eq!(items[5].2, vm.mac_hex());
        assert_eq!(items[5].3, "NAT");
        let adapter = find("Adapter");
        assert_eq!(adapter.attribute("MACAddress"), Some(vm.mac_hex().as_str()));
        assert!(
            virtualbox_vagrantfile(&vm)
                .contains(&format!("config.vm.base_mac = \"{}\"", vm.mac_hex()))
        );
        let image = find("Image");
        assert_eq!(
            image.attribute("uuid"),
            Some(format!("{{{}}}", vm.disk_uuid).as_str())
        );
    }

    #[test]
    fn boxes_are_deterministic_and_ordered() {
        let d = tempfile::tempdir().unwrap();
        let disk = d.path().join("disk");
        std::fs::write(&disk, b"not really a disk").unwrap();
        let mk = |p: &str| {
            let path = d.path().join(p);
            let f = File::create(&path).unwrap();
            write_virtualbox_box(&vm(), &disk, &f, 7, &|_| {}).unwrap();
            std::fs::read(path).unwrap()
        };
        let (a, b) = (mk("a.box"), mk("b.box"));
        assert_eq!(a, b);
        let mut ar = tar::Archive::new(&a[..]);
        let entries: Vec<(String, u64, u64, u32)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["box.ovf", VMDK_NAME, "Vagrantfile", "metadata.json"]
        );
        assert!(entries.iter().all(|e| e.1 == 7 && e.2 == 0 && e.3 == 0o644));

        let lv = d.path().join("l.box");
        write_libvirt_box(&disk, 1 << 30, &File::create(&lv).unwrap(), 0, &|_| {}).unwrap();
        let gz = std::fs::read(&lv).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["metadata.json", "Vagrantfile", "box.img"]);
    }
}
