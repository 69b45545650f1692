// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * pool_file.c - pool fds: their files, mmap() and the fault handler.
 *
 * Every pool has an inode of its own on a private pseudo filesystem (as
 * secretmem and dma-buf do), so its mappings hang off its own
 * address_space and unmap_mapping_range() reaches exactly them when pages
 * are freed or reclaimed.  Each open of a pool is a new file on that inode.
 *
 * 2 MiB pool pages are mapped with one PMD each where the mapping allows
 * it: the fault handler returns the subpage asked for of the compound pool
 * page, and finish_fault() maps the whole page with do_set_pmd() when the
 * VMA covers the 2 MiB-aligned address range around the fault and its file
 * offset has the same alignment (transhuge_vma_suitable()); otherwise, and
 * on kernels without CONFIG_TRANSPARENT_HUGEPAGE, it maps that subpage with
 * a PTE.  This is how shmem and the page cache map their THPs on 6.1, where
 * ->huge_fault() is only called for anonymous and DAX mappings.  Unmapping
 * (FREE, reclaim, munmap) zaps a PMD like any file THP's, and splitting a
 * PMD-mapped file page (partial munmap or mprotect) only unmaps it: the next
 * touch faults it in again.  mmap() without an address places mappings of
 * 2 MiB or more at a suitable address (thp_get_unmapped_area()).
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>		/* and huge_mm.h, which needs it first */
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pseudo_fs.h>
#include <linux/vmalloc.h>

#include "compat.h"
#include "kvmm_priv.h"

#define KVMM_FS_MAGIC	0x6b766d6d	/* "kvmm" */

static struct vfsmount *kvmm_mnt;

static int kvmm_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, KVMM_FS_MAGIC) ? 0 : -ENOMEM;
}

static struct file_system_type kvmm_fs_type = {
	.name = "kvmm",
	.init_fs_context = kvmm_fs_init_fs_context,
	.kill_sb = kill_anon_super,
};

int kvmm_pool_fs_init(void)
{
	kvmm_mnt = kern_mount(&kvmm_fs_type);
	return PTR_ERR_OR_ZERO(kvmm_mnt);
}

void kvmm_pool_fs_exit(void)
{
	kern_unmount(kvmm_mnt);
}

struct inode *kvmm_pool_inode(void)
{
	return alloc_anon_inode(kvmm_mnt->mnt_sb);
}

static void kvmm_pool_vm_open(struct vm_area_struct *vma)
{
	struct kvmm_pool *pool = vma->vm_file->private_data;

	atomic_inc(&pool->mappings);
}

static void kvmm_pool_vm_close(struct vm_area_struct *vma)
{
	struct kvmm_pool *pool = vma->vm_file->private_data;

	atomic_dec(&pool->mappings);
}

static vm_fault_t kvmm_pool_fault(struct vm_fault *vmf)
{
	struct kvmm_pool *pool = vmf->vma->vm_file->private_data;
	struct page *page;

	/*
	 * mmap() kept the VMA inside the pool and VM_DONTEXPAND keeps it so.
	 * The subpage at pgoff, with a reference the mapping takes over:
	 * finish_fault() maps either it (PTE) or its whole compound page
	 * (PMD, where it is suitably aligned).
	 */
	page = kvmm_pool_get_page(pool, vmf->pgoff);
	if (!page)
		return VM_FAULT_SIGBUS;	/* no memory on the node or in the memcg */
	if (IS_ERR(page))
		return VM_FAULT_NOPAGE;	/* dropped meanwhile: fault again */
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct kvmm_pool_vm_ops = {
	.open = kvmm_pool_vm_open,
	.close = kvmm_pool_vm_close,
	.fault = kvmm_pool_fault,
};

/* The status area at KVMM_STATUS_OFFSET: read-only, shared. */
static int kvmm_status_mmap(struct kvmm_pool *pool, struct vm_area_struct *vma)
{
	unsigned long off = vma->vm_pgoff - (KVMM_STATUS_OFFSET >> PAGE_SHIFT);

	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_flags & (VM_WRITE | VM_EXEC))
		return -EPERM;
	if (off >= pool->status_bytes >> PAGE_SHIFT ||
	    vma_pages(vma) > (pool->status_bytes >> PAGE_SHIFT) - off)
		return -EINVAL;
	kvmm_vm_flags_clear(vma, VM_MAYWRITE | VM_MAYEXEC);
	return remap_vmalloc_range(vma, pool->status, off);
}

static int kvmm_pool_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct kvmm_pool *pool = file->private_data;
	unsigned long limit = pool->nr_pages << pool->order;

	if (vma->vm_pgoff >= KVMM_STATUS_OFFSET >> PAGE_SHIFT)
		return kvmm_status_mmap(pool, vma);

	/* Private mappings would copy pages away from the pool. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_pgoff >= limit || vma_pages(vma) > limit - vma->vm_pgoff)
		return -EINVAL;
	/*
	 * VM_DONTEXPAND: no mremap() growth past the pool, no mlock();
	 * VM_DONTDUMP: KV caches do not belong in core dumps.
	 */
	kvmm_vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &kvmm_pool_vm_ops;
	kvmm_pool_vm_open(vma);
	return 0;
}

static int kvmm_pool_release_file(struct inode *inode, struct file *file)
{
	struct kvmm_pool *pool = file->private_data;

	atomic_dec(&pool->attached);
	kvmm_pool_put(pool);
	return 0;
}

static const struct file_operations kvmm_pool_fops = {
	.owner = THIS_MODULE,
	.release = kvmm_pool_release_file,
	.mmap = kvmm_pool_mmap,
	/* NULL without CONFIG_TRANSPARENT_HUGEPAGE: the default placement */
	.get_unmapped_area = thp_get_unmapped_area,
	.unlocked_ioctl = kvmm_pool_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = KVMM_NO_LLSEEK,
};

struct kvmm_pool *kvmm_pool_from_file(struct file *file)
{
	return file->f_op == &kvmm_pool_fops ? file->private_data : NULL;
}

/*
 * A new fd on pool, O_RDWR or O_RDONLY, maybe | O_CLOEXEC.  The file takes
 * its own pool reference.  Returns the fd or -errno.
 */
int kvmm_pool_install_fd(struct kvmm_pool *pool, int flags)
{
	char name[KVMM_NAME_MAX + 8];
	struct file *file;
	int fd;

	fd = get_unused_fd_flags(flags & O_CLOEXEC);
	if (fd < 0)
		return fd;
	snprintf(name, sizeof(name), "kvmm:%s", pool->name);
	/* alloc_file_pseudo() takes over this inode reference on success */
	ihold(pool->inode);
	file = alloc_file_pseudo(pool->inode, kvmm_mnt, name, flags & O_ACCMODE,
				 &kvmm_pool_fops);
	if (IS_ERR(file)) {
		iput(pool->inode);
		put_unused_fd(fd);
		return PTR_ERR(file);
	}
	/*
	 * fput() drops a module reference for f_op; alloc_file() takes none.
	 * The caller came through /dev/kvmm, whose open file pins the module.
	 */
	__module_get(THIS_MODULE);
	kvmm_pool_get(pool);
	atomic_inc(&pool->attached);
	file->private_data = pool;
	fd_install(fd, file);
	return fd;
}
